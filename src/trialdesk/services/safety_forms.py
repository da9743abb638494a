"""The adverse-event form and the decisions on proposed actions, for people.

* The term is chosen from every CTCAE v5.0 term (typed, searched); its MedDRA LLT code and
  SOC are stored with the event, and its grade texts are shown before the grade is chosen
  (:func:`preview_adverse_event`: nothing is stored).
* The course is derived from the onset date; an onset outside every course is said so.
* Any field of a recorded event can be corrected with a reason (:func:`correct_adverse_event`);
  the audit trail keeps the old value. A grade computed from a lab stays the lab's.
* A proposal names its condition and asks it; proposals of different rules for the same
  agent are alternatives, of which the clinician accepts one; every proposal can be
  accepted or declined, each decision signed (the password) with a reason
  (:func:`decide_actions`).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any

from trialdesk.clinical import ctcae, ctcae_codes
from trialdesk.errors import NotFoundError, SafetyError
from trialdesk.safety.rules import ProposedAction
from trialdesk.services import safety
from trialdesk.services.accounts import Principal
from trialdesk.services.context import Services
from trialdesk.services.journeys import load_journey, now
from trialdesk.services.roles import SIGNATURE_MEANINGS, Permission
from trialdesk.store.audit import digest
from trialdesk.store.records import ActionRow, AdverseEventRow

P = Permission
DECLINE_MEANING = "I decline this proposed toxicity action"

LABELS: dict[str, str] = {
    "term": "Term (CTCAE v5.0)", "grade": "Grade", "onset": "Onset date",
    "meddra_term": "MedDRA term", "meddra_code": "MedDRA code", "soc": "System organ class",
    "soc_code": "System organ class code", "course_number": "Course",
    "seriousness": "Seriousness", "expectedness": "Expectedness",
    "action_taken": "Action taken with study treatment", "outcome": "Outcome",
    "resolution": "Resolved on", "sponsor_aware_on": "Sponsor aware on",
    "attributions": "Attribution", "reason": "Reason", "password": "Your password",
    "version": "Version", "lab_term": "Lab term", "lab_value": "Lab value",
    "lab_unit": "Lab unit", "lab_lln": "Lower limit of normal",
    "lab_uln": "Upper limit of normal", "lab_baseline": "Baseline",
    "choice": "Decision", "condition_holds": "Does the condition hold",
    "accept_unconfirmed": "Unconfirmed source accepted", "days": "Delay by (days)",
    "percent": "Percentage", "action_id": "Action", "group": "Proposals",
}


def label_of(field: str | None) -> str:
    """The form label of an error's field (``grade`` → "Grade")."""
    if not field or field == "$":
        return "Form"
    name = field.removeprefix("$.").removeprefix("body.").removeprefix("adverse_event.")
    if name.startswith("attr_"):
        return "Attribution"
    if name.startswith("condition_"):
        return "Does the condition hold"
    return LABELS.get(name, LABELS.get(name.split(".")[0], name.replace("_", " ").capitalize()))


def _codes_view(c: ctcae_codes.TermCodes) -> dict[str, str]:
    return {"term": c.term, "meddra_code": c.meddra_code, "soc": c.soc, "soc_code": c.soc_code}


@functools.lru_cache(maxsize=2048)
def term_card(term: str) -> dict[str, Any] | None:
    """A CTCAE v5.0 term as the form shows it: codes, SOC, definition, and each grade's text
    (allowed grades only), or None when ``term`` is not a CTCAE v5.0 term. Kept per term for
    the process (the term list does not change while it runs): callers must not change it."""
    codes = ctcae_codes.term_codes(term)
    if codes is None:
        return None
    texts = ctcae_codes.grade_texts(codes.term)
    allowed = ctcae.term_definition(codes.term).allowed_grades
    return {**_codes_view(codes), "nci_code": codes.nci_code,
            "definition": ctcae_codes.term_text(codes.term),
            "grades": [{"grade": g, "text": texts.get(g, ""), "allowed": g in allowed}
                       for g in sorted(set(texts) | set(allowed))],
            "lab_graded": codes.term in ctcae.lab_terms(),
            "source": ctcae.SOURCE}


def search_terms(text: str, limit: int = 20) -> list[dict[str, str]]:
    """The CTCAE v5.0 terms a typed text finds, with their MedDRA code and SOC."""
    return [_codes_view(c) for c in ctcae_codes.search_terms(text, limit)]


def preview_adverse_event(ctx: Services, who: Principal, study_number: str, *,
                          term: str | None, grade: int | None, onset: date | None
                          ) -> dict[str, Any]:
    """What the form will store, before it is stored: the term found from what was typed
    (or the terms like it), its grade texts, the chosen grade's text and the course the
    onset falls in. Nothing is stored."""
    loaded = load_journey(ctx, who, study_number, P.ADVERSE_EVENT_RECORD)
    typed = " ".join((term or "").split())
    card = term_card(typed) if typed else None
    out: dict[str, Any] = {"term": typed, "card": card, "matches": [], "grade": grade,
                           "grade_text": None, "course": None, "problems": []}
    if typed and card is None:
        out["matches"] = search_terms(typed)
        if not out["matches"]:
            out["problems"].append(f"{LABELS['term']}: no CTCAE v5.0 term contains "
                                   f"'{typed}'; type part of the term, or give a free-text "
                                   "term with its MedDRA term")
    if card is not None and grade is not None:
        found = next((g for g in card["grades"] if g["grade"] == grade and g["allowed"]), None)
        if found is None:
            allowed = ", ".join(str(g["grade"]) for g in card["grades"] if g["allowed"])
            out["problems"].append(f"{LABELS['grade']}: grade {grade} does not exist for "
                                   f"'{card['term']}'; choose {allowed}")
        else:
            out["grade_text"] = found["text"]
    if onset is not None:
        out["course"] = safety.course_note(loaded.calendar_or_none(), onset)
    return out


def _own_event(ctx: Services, study_number: str, ae_id: int) -> AdverseEventRow:
    try:
        row = ctx.store.adverse_event(ae_id)
    except NotFoundError:
        row = None
    if row is None or row.study_number != study_number:
        raise NotFoundError(f"no adverse event {ae_id} of patient {study_number}")
    return row


def correct_adverse_event(ctx: Services, who: Principal, study_number: str, ae_id: int, *,
                          version: int, values: Mapping[str, Any], reason: str
                          ) -> dict[str, Any]:
    """Correct any field of a recorded event, with a reason: ``values`` are the corrected
    fields (None clears one). The codes follow a corrected term, the course a corrected
    onset; a grade computed from a lab stays the lab's. The audit keeps the old values."""
    if not reason or not reason.strip():
        raise SafetyError("say why the event is corrected", where="reason")
    loaded = load_journey(ctx, who, study_number, P.ADVERSE_EVENT_RECORD)
    row = _own_event(ctx, study_number, ae_id)
    fields = dict(row.document)
    for name, value in values.items():
        if value in (None, "", [], ()):
            fields.pop(name, None)
        else:
            fields[name] = value
    if " ".join(str(fields.get("term", "")).split()).casefold() != row.term.casefold():
        for name in ("meddra_code", "meddra_term", "soc", "soc_code"):
            if name not in values or values[name] in (None, ""):
                fields.pop(name, None)
    lab = row.lab or {}
    if lab:
        lab_term = ctcae.canonical_term(str(lab.get("term", ""))) or lab.get("term")
        if ctcae.canonical_term(str(fields.get("term", ""))) != lab_term:
            raise SafetyError(f"the event was graded from the lab ({lab_term}); its term stays "
                              "the lab's", where="term")
        possible = [lab["grade"]] if lab.get("grade") is not None else \
            list(lab.get("possible_grades") or [])
        if possible and fields.get("grade") not in possible:
            raise SafetyError(f"the lab grades {' or '.join(map(str, possible))} "
                              f"({lab.get('rule')}); the grade stays the lab's", where="grade")
    ae = safety.on_study_event(ctx, loaded, fields)
    course = safety.course_of(loaded.calendar_or_none(), ae.onset, None)
    # The rules again on the corrected event: what they now propose is added, a proposal
    # still awaiting a decision that they no longer make is withdrawn; decisions stay.
    check, proposals = safety.rule_check(loaded, ae, *course)
    saved = ctx.store.update_adverse_event(ae_id, ae.model_dump(mode="json"),
                                           expected_version=version, actor=who.username,
                                           reason=reason.strip(), course=course,
                                           check=check, proposals=proposals)
    return safety.adverse_event_view(saved)


# ---------------------------------------------------------------------------- decisions


def proposal_groups(row: AdverseEventRow) -> list[list[ActionRow]]:
    """The event's proposals awaiting a decision, grouped: proposals of different rules
    acting on the same agent are alternatives (one group); any other proposal stands alone.
    A group is named by its first action's id."""
    return action_groups(row.actions)


def action_groups(actions: Sequence[ActionRow]) -> list[list[ActionRow]]:
    """The proposals of ``actions`` awaiting a decision, grouped as :func:`proposal_groups`
    says."""
    pending = [a for a in actions if a.status == "proposed"
               and ProposedAction.model_validate(a.proposal).requires_confirmation]
    groups: list[list[ActionRow]] = []
    by_agent: dict[str, list[ActionRow]] = {}
    for a in pending:
        agent = ProposedAction.model_validate(a.proposal).agent
        if agent is None:
            groups.append([a])
            continue
        if agent not in by_agent:
            by_agent[agent] = []
            groups.append(by_agent[agent])
        by_agent[agent].append(a)
    out: list[list[ActionRow]] = []
    for g in groups:
        if len({a.rule_id for a in g}) > 1:
            out.append(g)
        else:
            out.extend([a] for a in g)
    return sorted(out, key=lambda g: g[0].id)


def decide_actions(ctx: Services, who: Principal, study_number: str, ae_id: int, *,
                   group: int, choice: int | None, conditions: Mapping[int, bool | None],
                   versions: Mapping[int, int], password: str, reason: str,
                   accept_unconfirmed: bool = False, days: int | None = None,
                   percent: float | None = None) -> list[dict[str, Any]]:
    """Decide a group of proposals: accept ``choice`` (one of them; None declines them
    all) and decline the others, each decision signed with the password and ``reason``.
    ``conditions`` answers, per action id, whether the proposal's condition holds;
    ``versions`` are the action versions the decision was made on."""
    if not reason or not reason.strip():
        raise SafetyError("give the reason for the decision", where="reason")
    loaded = load_journey(ctx, who, study_number, P.TOXICITY_CONFIRM)
    row = _own_event(ctx, study_number, ae_id)
    found = next((g for g in proposal_groups(row) if g[0].id == group), None)
    if found is None:
        raise NotFoundError(f"no proposal {group} awaiting a decision for adverse event {ae_id}")
    return _decide(ctx, loaded, found, choice=choice, conditions=conditions,
                   versions=versions, password=password, reason=reason, who=who,
                   accept_unconfirmed=accept_unconfirmed, days=days, percent=percent)


def decide_product_actions(ctx: Services, who: Principal, study_number: str, *, group: int,
                           choice: int | None, conditions: Mapping[int, bool | None],
                           versions: Mapping[int, int], password: str, reason: str,
                           accept_unconfirmed: bool = False, days: int | None = None,
                           percent: float | None = None) -> list[dict[str, Any]]:
    """Decide a group of the actions proposed for the patient's cell products that were
    not released (manufacturing failures), exactly as :func:`decide_actions` decides an
    adverse event's: one accepted and applied to the calendar, or all declined, each
    decision signed with the password and ``reason``."""
    if not reason or not reason.strip():
        raise SafetyError("give the reason for the decision", where="reason")
    loaded = load_journey(ctx, who, study_number, P.TOXICITY_CONFIRM)
    groups = action_groups(ctx.store.product_actions(study_number))
    found = next((g for g in groups if g[0].id == group), None)
    if found is None:
        raise NotFoundError(f"no product action {group} of patient {study_number} awaits a "
                            "decision")
    return _decide(ctx, loaded, found, choice=choice, conditions=conditions,
                   versions=versions, password=password, reason=reason, who=who,
                   accept_unconfirmed=accept_unconfirmed, days=days, percent=percent)


def _decide(ctx: Services, loaded: Any, found: list[ActionRow], *, who: Principal,
            choice: int | None, conditions: Mapping[int, bool | None],
            versions: Mapping[int, int], password: str, reason: str,
            accept_unconfirmed: bool, days: int | None, percent: float | None
            ) -> list[dict[str, Any]]:
    ids = [a.id for a in found]
    if choice is not None and choice not in ids:
        raise SafetyError(f"choose one of the proposals shown ({', '.join(map(str, ids))}) or "
                          "decline", where="choice")
    for a in found:
        given = versions.get(a.id)
        if given is not None and given != a.version:
            raise SafetyError(f"proposal {a.id} changed since the page was shown; reload it",
                              where="version")
    chosen = next((a for a in found if a.id == choice), None)
    if chosen is not None:
        # The checks that need no password come first, so a wrong answer costs no attempt.
        p = ProposedAction.model_validate(chosen.proposal)
        if p.condition and conditions.get(chosen.id) is not True:
            raise SafetyError(f"the proposal applies only if {p.condition}; answer yes to accept "
                              "it, or decline it", where=f"condition_{chosen.id}")
        if p.unconfirmed and not accept_unconfirmed:
            raise SafetyError(f"rule {p.rule_id} is not confirmed against its source "
                              f"({p.source}); accept that explicitly to accept the proposal",
                              where="accept_unconfirmed")
    signer = ctx.accounts.confirm_password(who, password)
    at = now(ctx).isoformat()
    accepted = None
    if chosen is not None:
        applied, delay = safety.accepted_change(
            ctx, loaded, chosen, signer.full_name, accept_unconfirmed=accept_unconfirmed,
            condition_holds=conditions.get(chosen.id), days=days, percent=percent,
            where="choice")
        accepted = {"action_id": chosen.id, "expected_version": chosen.version,
                    "applied": applied, "record_digest": digest(applied), "delay": delay}
    shown_chosen = ProposedAction.model_validate(chosen.proposal).shown() if chosen else None
    declined = []
    for a in found:
        if chosen is not None and a.id == chosen.id:
            continue
        p = ProposedAction.model_validate(a.proposal)
        decision = {"decision": "declined", "rule_id": a.rule_id, "shown": p.shown(),
                    "condition": p.condition, "condition_holds": conditions.get(a.id),
                    "instead": shown_chosen, "reason": reason.strip(), "decided_at": at,
                    "decided_by": signer.username}
        declined.append({"action_id": a.id, "expected_version": a.version,
                         "decision": decision, "record_digest": digest(decision)})
    saved = ctx.store.decide_actions(
        accepted=accepted, declined=declined, journey_version=loaded.version,
        user_id=signer.id, accept_meaning=SIGNATURE_MEANINGS[P.TOXICITY_CONFIRM],
        decline_meaning=DECLINE_MEANING, reason=reason.strip())
    return [safety.action_view(a) for a in saved]


# ---------------------------------------------------------------------------- the page


def adverse_events_form_page(ctx: Services, who: Principal, study_number: str
                             ) -> dict[str, Any]:
    """The adverse-event page: every event with its course in words, its term's grade
    texts and its proposals grouped for a decision, and the form's term list."""
    stored = safety.adverse_events_of(ctx, study_number)
    product_rows = safety.product_actions_of(ctx, study_number)
    page = safety.adverse_events_page(ctx, who, study_number, rows=stored,
                                      product_rows=product_rows)
    loaded = load_journey(ctx, who, study_number, P.CLINICAL_READ)
    cal = loaded.calendar_or_none()
    rows = {r.id: r for r in stored}
    note = safety.course_noter(cal)
    for item in page["items"]:
        row = rows[item["id"]]
        item["course_note"] = note(date.fromisoformat(row.onset))
        card = term_card(row.term)
        item["grade_text"] = next((g["text"] for g in card["grades"]
                                   if g["grade"] == row.grade), None) if card else None
        views = {a["id"]: a for a in item["actions"]}
        groups = proposal_groups(row)
        grouped = {a.id for g in groups for a in g}
        item["groups"] = [{"key": g[0].id, "alternatives": len(g) > 1,
                           "options": [views[a.id] for a in g]} for g in groups]
        item["decided"] = [a for a in item["actions"] if a["id"] not in grouped]
    page["product_actions"] = product_actions_section(ctx, study_number, product_rows)
    page["all_terms"] = all_terms_view()
    page["can_decide"] = page["can_confirm"]
    return page


@functools.cache
def all_terms_view() -> tuple[dict[str, str], ...]:
    """Every CTCAE v5.0 term with its MedDRA code and SOC (the form's term list; the same
    for every page and every process lifetime)."""
    return tuple(_codes_view(c) for c in ctcae_codes.all_terms())


def product_actions_section(ctx: Services, study_number: str,
                            rows: Sequence[ActionRow] | None = None) -> dict[str, Any]:
    """The actions proposed for the patient's cell products that were not released: the
    groups awaiting a decision and the ones decided, each with its product, the reason it
    was not released and the calendar event it concerns."""
    if rows is None:
        rows = ctx.store.product_actions(study_number)
    releases = {e.id: e.document.get("manufacturing_failure") or {}
                for e in ctx.store.product_releases(sorted({a.product for a in rows
                                                             if a.product}))}

    def view(a: ActionRow) -> dict[str, Any]:
        failure = releases.get(a.release_id or 0, {})
        return {**safety.action_view(a), "failure_reason": failure.get("reason"),
                "event": failure.get("event"), "event_name": failure.get("event_name"),
                "course_number": failure.get("course_number")}

    views = {a.id: view(a) for a in rows}
    groups = action_groups(rows)
    grouped = {a.id for g in groups for a in g}
    return {"groups": [{"key": g[0].id, "alternatives": len(g) > 1,
                        "options": [views[a.id] for a in g]} for g in groups],
            "decided": [v for k, v in views.items() if k not in grouped]}
