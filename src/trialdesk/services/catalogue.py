"""What the API and the pages share: the compiled protocols, trial search, the registry
page and screening results as plain dictionaries, and the hints that resolve unknowns.

The registry page carries the same content as the command line's (``trialdesk show``):
the regimen lines come from :func:`trialdesk.views.regimen_lines`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, TypeVar, cast

from trialdesk.criteria.ast import to_text
from trialdesk.criteria.verdict import ScreeningResult, screen_record
from trialdesk.errors import FactError, NotFoundError
from trialdesk.facts.dictionary import FactKind
from trialdesk.facts.patient import PatientRecord, check_record
from trialdesk.protocol.lint import lint
from trialdesk.protocol.load import CompiledProtocol, protocol_from_data
from trialdesk.store import Store
from trialdesk.store.records import ProtocolVersionRecord, TrialRecord
from trialdesk.views import phases, regimen_lines

STATUS_LABELS = {
    "NOT_YET_RECRUITING": "Not yet recruiting", "RECRUITING": "Recruiting",
    "ENROLLING_BY_INVITATION": "Enrolling by invitation",
    "ACTIVE_NOT_RECRUITING": "Active, not recruiting", "COMPLETED": "Completed",
    "SUSPENDED": "Suspended", "TERMINATED": "Terminated", "WITHDRAWN": "Withdrawn",
    "UNKNOWN": "Unknown status", "AVAILABLE": "Available",
}
PHASES = ("EARLY_PHASE1", "PHASE1", "PHASE2", "PHASE3", "PHASE4", "NA")
PHASE_LABELS = {"EARLY_PHASE1": "Early phase 1", "PHASE1": "Phase 1", "PHASE2": "Phase 2",
                "PHASE3": "Phase 3", "PHASE4": "Phase 4", "NA": "Not applicable"}

_AGE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(year|month|week|day)s?\s*$", re.IGNORECASE)
_MONTHS_PER = {"year": 12.0, "month": 1.0, "week": 12 / 52.1775, "day": 12 / 365.25}


def age_bound_months(text: str | None) -> tuple[float, str] | None:
    """A registry age (``18 Months``, ``75 Years``) as (months, unit).

    >>> age_bound_months("18 Months"), age_bound_months("18 Years")
    ((18.0, 'month'), (216.0, 'year'))
    """
    if not text:
        return None
    found = _AGE.match(text)
    if not found:
        return None
    unit = found.group(2).lower()
    return float(found.group(1)) * _MONTHS_PER[unit], unit


def accepts_age(minimum: str | None, maximum: str | None, age_years: float) -> bool:
    """Whether a patient of ``age_years`` is inside the registry's age range.

    The maximum counts completed units, as registries state it ("up to 18 Years" includes
    a patient aged 18 years and 5 months).

    >>> accepts_age("18 Months", "18 Years", 1.4), accepts_age("18 Months", "18 Years", 18.9)
    (False, True)
    """
    months = age_years * 12
    low = age_bound_months(minimum)
    if low is not None and months < low[0] - 1e-9:
        return False
    high = age_bound_months(maximum)
    if high is not None:
        per = _MONTHS_PER[high[1]]
        if math.floor(months / per + 1e-9) > high[0] / per + 1e-9:
            return False
    return True


@dataclass(frozen=True)
class TrialEntry:
    record: TrialRecord
    compiled: CompiledProtocol


_COMPILED: dict[str, CompiledProtocol] = {}
_COMPILED_MAX = 256
_KEPT_MAX = 20_000  # rows kept between writes (see Catalogue.kept)
_MEMO_MAX = 2_000  # values kept across writes (see Catalogue.memo)
_MISSING = object()
T = TypeVar("T")


class Catalogue:
    """The stored trials, compiled once per protocol document (cached by its digest: a
    stored version never changes, so the cache is shared by every application)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        #: key → (the write counter it was read under, the value)
        self._kept: dict[Hashable, tuple[int, Any]] = {}
        self._newest = -1  # the newest write counter seen
        #: key → value, for values that are a function of their key alone (see :meth:`memo`)
        self._memo: dict[Hashable, Any] = {}

    def has(self, key: Hashable) -> bool:
        """Whether :meth:`kept` holds ``key`` as of the current write counter."""
        found = self._kept.get(key)
        return found is not None and found[0] == self.store.writes()

    def remember(self, key: Hashable, value: Any) -> None:
        """Keep ``value`` (just read with the others of a list) as :meth:`kept` would."""
        self.kept(key, lambda: value)

    def kept(self, key: Hashable, load: Callable[[], T]) -> T:
        """What ``load`` gives, kept in this process until the next write to the database
        (by any process: the store's write counter keys it). What is kept is shared by the
        requests that follow: callers must not change it.

        Each value is kept with the counter read *before* it was loaded, and given only
        while the counter is still that: a value loaded while another thread's request saw
        a newer counter is never given as current (requests run on several threads)."""
        writes = self.store.writes()
        if writes > self._newest:  # a write since: let go of what was read before it
            self._newest, self._kept = writes, {}
        found = self._kept.get(key)
        if found is not None and found[0] == writes:
            return cast(T, found[1])
        value = load()
        if len(self._kept) >= _KEPT_MAX:
            self._kept = {}
        self._kept[key] = (writes, value)
        return value

    def memo(self, key: Hashable, load: Callable[[], T]) -> T:
        """What ``load`` gives, kept in this process across writes: only for a ``key`` that
        names everything the value is computed from (versions and digests of what was
        read, the moment), so that no write can make it stale. Callers must not change it."""
        found = self._memo.get(key, _MISSING)
        if found is not _MISSING:
            return cast(T, found)
        value = load()
        if len(self._memo) >= _MEMO_MAX:
            self._memo = {}
        self._memo[key] = value
        return value

    def compile(self, version: ProtocolVersionRecord) -> CompiledProtocol:
        found = _COMPILED.get(version.digest)
        if found is None:
            found = protocol_from_data(version.document,
                                       source=f"{version.trial_id} version {version.number}")
            if len(_COMPILED) >= _COMPILED_MAX:
                _COMPILED.pop(next(iter(_COMPILED)))
            _COMPILED[version.digest] = found
        return found

    def trials(self) -> list[TrialEntry]:
        return list(self.kept(("trials",), lambda: [
            TrialEntry(t, self.compile(t.latest)) for t in self.store.trials()]))

    def trial(self, trial_id: str, number: int | None = None
              ) -> tuple[ProtocolVersionRecord, CompiledProtocol]:
        version = self.kept(("protocol_version", trial_id, number),
                            lambda: self.store.protocol_version(trial_id, number))
        return version, self.compile(version)


def search(entries: Sequence[TrialEntry], *, q: str | None = None, condition: str | None = None,
           intervention: str | None = None, phase: str | None = None, status: str | None = None,
           age_years: float | None = None) -> list[TrialEntry]:
    """Trials matching every given filter (text filters are case-insensitive substrings)."""

    def has(texts: Sequence[str | None], needle: str | None) -> bool:
        return needle is None or any(needle.lower() in (t or "").lower() for t in texts)

    out = []
    for e in entries:
        p = e.compiled.protocol
        r = p.registry
        interventions = [i.name for i in r.arms_interventions.interventions] + [
            i.description or "" for i in r.arms_interventions.interventions]
        ident = r.identification
        everything = [p.id, p.title, ident.brief_title, ident.official_title, ident.nct_id,
                      ident.acronym, r.description.brief_summary, *r.conditions, *r.keywords,
                      *interventions]
        if not (has(everything, q) and has([*r.conditions, *r.keywords], condition)
                and has(interventions, intervention)):
            continue
        if phase is not None and phase not in r.design.phases:
            continue
        if status is not None and r.status.overall_status != status:
            continue
        if age_years is not None and not accepts_age(r.eligibility.minimum_age,
                                                     r.eligibility.maximum_age, age_years):
            continue
        out.append(e)
    return out


def status_label(compiled: CompiledProtocol) -> str:
    s = compiled.protocol.registry.status
    return s.display_status or STATUS_LABELS.get(s.overall_status, s.overall_status)


def summary(entry: TrialEntry) -> dict[str, Any]:
    """One line of the registry list."""
    p = entry.compiled.protocol
    r = p.registry
    return {
        "id": p.id, "title": p.title, "brief_title": r.identification.brief_title,
        "nct_id": r.identification.nct_id, "phase": phases(p), "phases": r.design.phases,
        "status": r.status.overall_status, "status_label": status_label(entry.compiled),
        "conditions": r.conditions, "sponsor": r.sponsor.lead_sponsor.name,
        "minimum_age": r.eligibility.minimum_age, "maximum_age": r.eligibility.maximum_age,
        "arms": [a.label for a in p.arms],
        "protocol_version": {"number": entry.record.latest.number,
                             "label": entry.record.latest.label},
    }


def registry_page(version: ProtocolVersionRecord, compiled: CompiledProtocol,
                  versions: Sequence[ProtocolVersionRecord]) -> dict[str, Any]:
    """The trial laid out like the seed registry pages, plus regimens and lint findings."""
    p = compiled.protocol
    r = p.registry
    ident = r.identification
    e = r.eligibility
    d = r.design

    def criteria(items: Sequence[Any]) -> list[dict[str, Any]]:
        return [{"id": c.id, "text": c.text, "rule": None if c.attest else
                 to_text(compiled.rules[c.id]), "attest": c.attest, "note": c.note}
                for c in items]

    arms = []
    for arm in p.arms:
        rule = compiled.arm_rules.get(arm.id)
        arms.append({
            "id": arm.id, "label": arm.label, "type": arm.type.replace("_", " ").title(),
            "description": arm.description,
            "assignment": (f"assigned when: {to_text(rule)}" if rule is not None
                           else f"by randomisation {arm.assignment.randomisation}"),
            "regimen": regimen_lines(p, arm.id),
        })
    findings = [{"level": f.level, "code": f.code, "where": f.where, "message": f.message}
                for f in lint(compiled)]
    return {
        "id": p.id, "title": p.title, "brief_title": ident.brief_title,
        "official_title": ident.official_title, "acronym": ident.acronym,
        "sponsor": r.sponsor.lead_sponsor.name,
        "collaborators": [c.name for c in r.sponsor.collaborators],
        "funder_type": r.sponsor.funder_type,
        "status": r.status.overall_status, "status_label": status_label(compiled),
        "phase": phases(p), "phases": d.phases,
        "start_date": r.status.start_date, "completion_date": r.status.completion_date,
        "conditions": r.conditions, "keywords": r.keywords,
        "treatments": [{"type": i.type.replace("_", " ").title(), "name": i.name,
                        "description": i.description}
                       for i in r.arms_interventions.interventions],
        "study_type": d.study_type.replace("_", " ").title(),
        "identifiers": [x for x in (ident.nct_id, ident.org_study_id, *ident.secondary_ids) if x],
        "about": r.description.brief_summary,
        "description": r.description.detailed_description,
        "enrollment": (f"{d.enrollment.count} {d.enrollment.type.lower()} patients"
                       if d.enrollment else None),
        "sex": e.sex.title(),
        "ages": f"{e.minimum_age or '—'} to {e.maximum_age or '—'} old",
        "volunteers": "Healthy volunteers" if e.healthy_volunteers else "No Healthy Volunteers",
        "inclusion": criteria(p.eligibility.inclusion),
        "exclusion": criteria(p.eligibility.exclusion),
        "design": {
            "Primary purpose": (d.primary_purpose or "—").replace("_", " ").title(),
            "Allocation": d.allocation.replace("_", "-").title(),
            "Interventional model": (d.intervention_model or "—").replace("_", " ").title(),
            "Masking": d.masking_description or d.masking.title(),
        },
        "arms": arms,
        "outcomes": {"primary": [o.model_dump() for o in r.outcomes.primary],
                     "secondary": [o.model_dump() for o in r.outcomes.secondary]},
        "locations": [loc.model_dump() for loc in r.contacts_locations.locations],
        "lint": findings,
        "source": r.source,
        "protocol_version": {"number": version.number, "label": version.label,
                             "digest": version.digest, "created_at": version.created_at},
        "versions": [{"number": v.number, "label": v.label, "created_at": v.created_at,
                      "created_by": v.created_by, "digest": v.digest} for v in versions],
    }


# ---------------------------------------------------------------------------- screening

_WHERE = {
    FactKind.LAB: "a laboratory result with its unit, reference range and date",
    FactKind.MEASUREMENT: "a measurement with its unit and date",
    FactKind.PERFORMANCE: "a performance score (Lansky under 16, Karnofsky from 16) with its date",
    FactKind.FINDING: "a clinical finding with its date",
    FactKind.DISEASE: "a dated disease-status entry",
    FactKind.DIAGNOSIS: "the diagnosis",
    FactKind.TREATMENT: "the treatment history (agent, category, start and end dates)",
    FactKind.CONSENT: "the signed consent for this trial",
    FactKind.ATTESTATION: "the investigator's yes/no answer",
    FactKind.DEMOGRAPHIC: "the demographics",
    FactKind.DERIVED: "the values it is derived from",
}


def resolution_hints(compiled: CompiledProtocol, result: dict[str, Any]) -> list[dict[str, str]]:
    """For each missing fact: what it is, why it is missing, and what to record."""
    reasons: dict[str, str] = {}
    for c in result.get("criteria", []):
        if c.get("outcome") == "unknown":
            for miss in c.get("missing", []):
                reasons.setdefault(miss["fact"], miss["reason"])
    dictionary = compiled.protocol.dictionary
    hints = []
    for fact in result.get("missing_facts", []):
        d = dictionary.get(fact)
        description = d.description if d else fact
        record = _WHERE.get(d.kind, "the value") if d else "the value"
        if d and d.derivation:
            record = f"{record} ({d.derivation})"
        if d and d.unit and d.kind in (FactKind.LAB, FactKind.MEASUREMENT):
            record = f"{record}, in {d.unit} or a convertible unit"
        hints.append({"fact": fact, "description": description,
                      "reason": reasons.get(fact, "not recorded"), "record": record})
    return hints


def screen_now(compiled: CompiledProtocol, record: PatientRecord, as_of: datetime
               ) -> ScreeningResult:
    return screen_record(compiled, record, as_of=as_of)


def checked_record(record: PatientRecord, *, today: date, source: str) -> PatientRecord:
    """The record after the impossible-value checks (FactError naming the field)."""
    check_record(record, today=today, source=source)
    return record


def study_prefix(trial_id: str) -> str:
    """Study numbers are the trial's letters and a serial: ``NBNK-0001``.

    >>> study_prefix("NB-NK-2026"), study_prefix("RuMCeSS")
    ('NBNK', 'RUMCES')
    """
    letters = re.sub(r"[^A-Za-z]", "", trial_id).upper()[:6]
    if not letters:
        raise NotFoundError(f"trial id '{trial_id}' has no letters for a study number")
    return letters


def age_at(birth: str, on: date) -> int:
    b = date.fromisoformat(birth)
    return on.year - b.year - ((on.month, on.day) < (b.month, b.day))


__all__ = ["Catalogue", "FactError", "TrialEntry", "accepts_age", "registry_page",
           "resolution_hints", "search", "summary"]
