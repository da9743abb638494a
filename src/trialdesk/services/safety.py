"""Adverse events on the web: entry with CTCAE v5.0 grade validation and automatic lab
grading, the protocol's toxicity rules evaluated into proposed actions, and a clinician's
confirmation of an action (an e-signature) that applies it to the calendar.

The course an event happened in is the calendar's course whose dates hold the onset (or
the one the form names). What the rules propose is stored with the event; an action that
changes the calendar waits for a clinician's confirmation, supportive care is advice.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import date
from typing import Any, TypeVar

from trialdesk.clinical import ctcae, ctcae_codes
from trialdesk.errors import ConflictError, NotFoundError, SafetyError, TrialdeskError
from trialdesk.safety.adverse_event import AdverseEvent
from trialdesk.safety.check import check_document
from trialdesk.safety.rules import ProposedAction, Status
from trialdesk.schedule.actions import rule_proposal
from trialdesk.schedule.plan import Calendar, EventKind
from trialdesk.services.accounts import Principal
from trialdesk.services.context import Services
from trialdesk.services.journeys import load_journey, now, plain
from trialdesk.services.patients import signature_view
from trialdesk.services.roles import SIGNATURE_MEANINGS, Permission
from trialdesk.store.audit import digest
from trialdesk.store.records import ActionRow, AdverseEventRow

P = Permission


def course_of(cal: Calendar | None, onset: date, number: int | None
               ) -> tuple[int | None, str | None]:
    """The course (number, id) the event happened in: the one whose dates hold the onset;
    (None, None) outside every course. A course named (API) must be that one."""
    if cal is None:
        if number is not None:
            raise SafetyError("the calendar has no start date yet, so it has no courses",
                              where="course_number")
        return None, None
    courses = {e.course_number: e for e in cal.events
               if e.kind is EventKind.COURSE and e.course_number is not None}
    if number is not None and number not in courses:
        raise SafetyError(f"the calendar has courses 1–{max(courses, default=0)}",
                          where="course_number")
    found: tuple[int | None, str | None] = (None, None)
    for n, e in sorted(courses.items()):
        if e.date is not None and e.date <= onset <= (e.end or e.date):
            found = n, e.course_id
            break
    if number is not None and number != found[0]:
        raise SafetyError(f"the course is derived from the onset: {course_note(cal, onset)}",
                          where="course_number")
    return found


def rule_check(loaded: Any, ae: AdverseEvent, number: int | None, course_id: str | None
               ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The protocol's toxicity rules on the event in its course: the safety check and the
    actions it proposes (``rule_id``, ``kind``, ``proposal``, ``found_on``)."""
    document = {"patient_id": loaded.row.study_number, "trial": loaded.protocol.id,
                "arm": loaded.journey.arm, "course": course_id, "course_number": number,
                "events": [ae.model_dump(mode="json")]}
    try:
        check = check_document(document, loaded.protocol, source="adverse event")
    except TrialdeskError as exc:
        raise plain(exc) from None
    proposals = []
    found: dict[str, str | None] = {}
    for a in check.actions:
        if a.changes_calendar and a.rule_id not in found:
            proposal = rule_proposal(check, loaded.protocol, a.rule_id)
            found[a.rule_id] = proposal.found_on.isoformat() if proposal.found_on else None
        proposals.append({"rule_id": a.rule_id, "kind": a.kind.value,
                          "proposal": a.model_dump(mode="json"),
                          "found_on": found.get(a.rule_id, ae.onset.isoformat())})
    return check.to_json(), proposals


def on_study_event(ctx: Services, loaded: Any, fields: Mapping[str, Any]) -> AdverseEvent:
    """The event validated (CTCAE v5.0, with its term's codes), its dates not in the future
    and its onset on study: from the day of enrolment until death (what the outcome
    analyses count)."""
    try:
        ae = AdverseEvent.model_validate(with_codes(dict(fields)))
    except TrialdeskError as exc:
        raise plain(exc) from None
    today = ctx.store.now().date()
    for name in ("onset", "resolution", "sponsor_aware_on"):
        day = getattr(ae, name)
        if day is not None and day > today:
            raise SafetyError(f"{day.isoformat()} is in the future", where=name)
    enrolled = date.fromisoformat(loaded.row.enrolled_at[:10])
    if ae.onset < enrolled:
        raise SafetyError(f"{ae.onset.isoformat()} is before the enrolment "
                          f"({enrolled.isoformat()})", where="onset")
    death = next((f.occurred_on for f in ctx.store.follow_ups(loaded.row.study_number)
                  if f.kind == "death"), None)
    if death is not None and ae.onset.isoformat() > death:
        raise SafetyError(f"{ae.onset.isoformat()} is after the recorded death ({death})",
                          where="onset")
    return ae


def course_note(cal: Calendar | None, onset: date) -> str:
    """Where the onset falls on the calendar, in words: "course 2 (DIT, 2026-12-14 →
    2027-01-03)", or why it is in none ("before course 1, which starts 2026-11-23")."""
    return course_noter(cal)(onset)


def course_noter(cal: Calendar | None) -> Callable[[date], str]:
    """:func:`course_note` for many onsets on one calendar (its courses sorted once)."""
    courses = sorted(((e.course_number, e) for e in (cal.events if cal else ())
                      if e.kind is EventKind.COURSE and e.course_number is not None
                      and e.date is not None), key=lambda c: c[0])

    def note(onset: date) -> str:
        if not courses:
            return "outside any course: the calendar has no dated courses yet"
        prev = None
        for n, e in courses:
            assert e.date is not None
            end = e.end or e.date
            if e.date <= onset <= end:
                return f"course {n} ({e.course_id}, {e.date.isoformat()} → {end.isoformat()})"
            if onset < e.date:
                if prev is None:
                    return (f"outside any course: {onset.isoformat()} is before course {n}, which "
                            f"starts {e.date.isoformat()}")
                return (f"outside any course: {onset.isoformat()} is between course {prev[0]} "
                        f"(ended {prev[1].isoformat()}) and course {n} (starts "
                        f"{e.date.isoformat()})")
            prev = (n, end)
        assert prev is not None
        return (f"outside any course: {onset.isoformat()} is after the last course, course "
                f"{prev[0]}, which ended {prev[1].isoformat()}")

    return note


def with_codes(fields: dict[str, Any]) -> dict[str, Any]:
    """A CTCAE v5.0 term's MedDRA LLT code and SOC added to the event's fields (a code or
    SOC given must be the term's); other terms unchanged."""
    codes = ctcae_codes.term_codes(str(fields.get("term") or ""))
    if codes is None:
        return fields
    out = dict(fields)
    for name, value in (("meddra_code", codes.meddra_code), ("soc", codes.soc),
                        ("soc_code", codes.soc_code)):
        if out.get(name) not in (None, "", value):
            raise SafetyError(f"'{codes.term}' is {name.replace('_', ' ')} {value} in CTCAE "
                              f"v{ctcae.CTCAE_VERSION}, not {out[name]}", where=name)
        out[name] = value
    out["meddra_term"] = codes.term  # CTCAE v5.0 terms are MedDRA v20.1 LLTs
    return out


def _lab_grade(lab: Mapping[str, Any]) -> ctcae.LabGrade:
    try:
        return ctcae.grade_lab(str(lab["term"]), lab["value"], str(lab["unit"]),
                               lln=lab.get("lln"), uln=lab.get("uln"),
                               baseline=lab.get("baseline"), symptomatic=lab.get("symptomatic"),
                               anticoagulation=lab.get("anticoagulation"),
                               physiologic_consequences=lab.get("physiologic_consequences"),
                               bleeding=lab.get("bleeding"))
    except TrialdeskError as exc:
        field = exc.where or "value"
        raise SafetyError(exc.reason, where=f"lab.{field}") from None


#: How many times an adverse event is checked again against a calendar another save changed
#: meanwhile before the save is refused as a conflict.
RECHECKS = 5


def record_adverse_event(ctx: Services, who: Principal, study_number: str, *,
                         event: Mapping[str, Any], lab: Mapping[str, Any] | None,
                         course_number: int | None, reason: str) -> dict[str, Any]:
    """Validate (CTCAE v5.0), grade the lab if one is given, find the course, evaluate the
    protocol's toxicity rules and store the event with the actions they propose.

    The event is checked against the journey as read and saved naming its version. A save
    in between (another event recorded at the same time, a dose, a moved day 1) changes that
    version: the event is then checked again, from the start, against the journey as it is
    now — its course and the rules' proposals are those of the calendar it is stored with —
    up to :data:`RECHECKS` times before the save is refused as a conflict."""
    last = ""
    for _ in range(RECHECKS):
        try:
            return _record_adverse_event(ctx, who, study_number, event=event, lab=lab,
                                         course_number=course_number, reason=reason)
        except ConflictError as exc:
            if exc.where != "version":
                raise
            last = exc.reason
    raise ConflictError(
        f"the adverse event was checked {RECHECKS} times against the calendar of "
        f"{study_number} and each time another save changed the calendar first (the last: "
        f"{last.split('; reload')[0]}); nothing was stored — submit the event again",
        where="version")


def _record_adverse_event(ctx: Services, who: Principal, study_number: str, *,
                          event: Mapping[str, Any], lab: Mapping[str, Any] | None,
                          course_number: int | None, reason: str) -> dict[str, Any]:
    loaded = load_journey(ctx, who, study_number, P.ADVERSE_EVENT_RECORD)
    fields = {k: v for k, v in event.items() if v not in (None, "", [], ())}
    graded = None
    if lab is not None:
        graded = _lab_grade(lab)
        fields.setdefault("term", graded.term)
        if ctcae.canonical_term(str(fields["term"])) != graded.term:
            raise SafetyError(f"the lab grades '{graded.term}', not '{fields['term']}'",
                              where="lab.term")
        if graded.grade is None:
            if "grade" not in fields:
                raise SafetyError(
                    f"the lab leaves grade {' or '.join(map(str, graded.possible_grades))} "
                    f"open ({graded.rule}); give the grade"
                    + (f" or {', '.join(graded.missing)}" if graded.missing else ""),
                    where="grade")
            if fields["grade"] not in graded.possible_grades:
                raise SafetyError(f"the lab allows grade "
                                  f"{' or '.join(map(str, graded.possible_grades))} only",
                                  where="grade")
        elif graded.grade == 0:
            raise SafetyError(f"{graded.value:g} {graded.unit} is not an adverse event by CTCAE "
                              f"v{ctcae.CTCAE_VERSION} ({graded.rule})", where="lab.value")
        else:
            if "grade" in fields and fields["grade"] != graded.grade:
                raise SafetyError(f"the lab grades {graded.grade} ({graded.rule})",
                                  where="grade")
            fields["grade"] = graded.grade
    for needed in ("term", "grade"):
        if needed not in fields:
            raise SafetyError("give it, or a lab value to grade", where=needed)
    ae = on_study_event(ctx, loaded, fields)
    cal = loaded.calendar_or_none()
    number, course_id = course_of(cal, ae.onset, course_number)
    check, proposals = rule_check(loaded, ae, number, course_id)
    lab_doc = None
    if graded is not None:
        lab_doc = {**{k: v for k, v in lab.items() if v is not None},  # type: ignore[union-attr]
                   "grade": graded.grade, "possible_grades": list(graded.possible_grades),
                   "rule": graded.rule, "ctcae_version": graded.ctcae_version,
                   "source": graded.source}
    row = ctx.store.add_adverse_event(
        study_number, document=ae.model_dump(mode="json"), lab=lab_doc, check=check,
        course_number=number, course_id=course_id, proposals=proposals,
        expected_version=loaded.version, actor=who.username, reason=reason)
    return adverse_event_view(row)


def _status(row: ActionRow) -> str:
    if row.status == "proposed" and not ProposedAction.model_validate(row.proposal).requires_confirmation:
        return "advice"
    return row.status


def action_view(row: ActionRow) -> dict[str, Any]:
    p = ProposedAction.model_validate(row.proposal)
    out: dict[str, Any] = {
        "id": row.id, "rule_id": row.rule_id, "kind": row.kind, "shown": p.shown(),
        "reason": p.reason, "source": p.source, "unconfirmed": p.unconfirmed,
        "condition": p.condition, "changes_calendar": p.changes_calendar, "agent": p.agent,
        "question": condition_question(p.condition) if p.condition else None,
        "decision": None,
        "requires_confirmation": p.requires_confirmation and p.changes_calendar,
        "needs_days": p.kind.value == "delay_course",
        "needs_percent": p.kind.value in ("reduce", "slow") and p.percent is None,
        "found_on": row.found_on, "status": _status(row), "version": row.version,
        "applied": None, "signature": None, "adverse_event_id": row.adverse_event_id,
        "product": row.product, "release_id": row.release_id}
    if row.status == "declined" and row.applied is not None:
        out["decision"] = row.applied
    elif row.applied is not None:
        out["applied"] = {"event_ids": row.applied.get("event_ids", []),
                          "effective": row.applied.get("effective"),
                          "days": row.applied.get("days"), "percent": row.applied.get("percent")}
    if row.signature is not None:
        valid = row.applied is not None and digest(row.applied) == row.signature.record_digest
        out["signature"] = {**signature_view(row.signature), "valid": valid}
    return out


def adverse_event_view(row: AdverseEventRow) -> dict[str, Any]:
    rules = [r for r in row.check.get("rules", []) if r.get("status") != "not_triggered"]
    reporting = (row.check.get("events") or [{}])[0].get("reporting")
    return {"id": row.id, "term": row.term, "grade": row.grade, "onset": row.onset,
            "course_number": row.course_number, "course_id": row.course_id,
            "event": row.document, "lab": row.lab, "reporting": reporting, "rules": rules,
            "actions": [action_view(a) for a in row.actions],
            "recorded_at": row.recorded_at, "recorded_by": row.recorded_by,
            "updated_at": row.updated_at, "updated_by": row.updated_by, "version": row.version}


def adverse_events_of(ctx: Services, study_number: str) -> list[AdverseEventRow]:
    """The patient's adverse events with their actions, kept until the next write."""
    return ctx.catalogue.kept(("adverse events", study_number),
                              lambda: ctx.store.adverse_events(study_number))


def product_actions_of(ctx: Services, study_number: str) -> list[ActionRow]:
    """The actions proposed for the patient's cell products, kept until the next write."""
    return ctx.catalogue.kept(("product actions", study_number),
                              lambda: ctx.store.product_actions(study_number))


def adverse_events_page(ctx: Services, who: Principal, study_number: str, *,
                        rows: Sequence[AdverseEventRow] | None = None,
                        product_rows: Sequence[ActionRow] | None = None) -> dict[str, Any]:
    """The patient's adverse events and product actions (``rows``, ``product_rows``: as
    already read by the caller)."""
    loaded = load_journey(ctx, who, study_number, P.CLINICAL_READ)
    if rows is None:
        rows = adverse_events_of(ctx, study_number)
    if product_rows is None:
        product_rows = product_actions_of(ctx, study_number)
    trial, site = loaded.row.trial_id, loaded.row.site
    cal = loaded.calendar_or_none()
    agents = sorted({e.dose.agent for e in cal.events if e.dose is not None}) if cal else []
    courses = [{"number": e.course_number, "course_id": e.course_id,
                "date": e.date.isoformat() if e.date else None}
               for e in (cal.events if cal else ()) if e.kind is EventKind.COURSE]
    return {"study_number": study_number, "trial_id": trial, "version": loaded.version,
            "header": loaded.journey.header(),
            "items": [adverse_event_view(r) for r in rows],
            "product_actions": [action_view(a) for a in product_rows],
            "terms": list(ctcae.known_terms()), "lab_terms": list(ctcae.lab_terms()),
            "agents": agents, "courses": courses,
            "can_record": who.can(P.ADVERSE_EVENT_RECORD, trial, site),
            "can_confirm": who.can(P.TOXICITY_CONFIRM, trial, site)}

T = TypeVar("T")


def _own(load: Callable[[], T], owner: Callable[[T], str], study_number: str, missing: str) -> T:
    """A record of this patient: another patient's (or another trial's) answers exactly as
    one that does not exist, so ids cannot be probed across trials."""
    try:
        row = load()
    except NotFoundError:
        row = None
    if row is None or owner(row) != study_number:
        raise NotFoundError(missing)
    return row


def update_adverse_event(ctx: Services, who: Principal, study_number: str, ae_id: int, *,
                         version: int, changes: Mapping[str, Any], reason: str
                         ) -> dict[str, Any]:
    """A follow-up of an event (resolution, outcome, action taken, expectedness, the day the
    sponsor learnt of it), refused when based on a stale version."""
    loaded = load_journey(ctx, who, study_number, P.ADVERSE_EVENT_RECORD)
    row = _own(lambda: ctx.store.adverse_event(ae_id), lambda r: r.study_number,
               loaded.row.study_number, f"no adverse event {ae_id} of patient {study_number}")
    fields = {**row.document, **{k: v for k, v in changes.items() if v is not None}}
    try:
        ae = AdverseEvent.model_validate(fields)
    except TrialdeskError as exc:
        raise plain(exc) from None
    for name in ("resolution", "sponsor_aware_on"):
        day = getattr(ae, name)
        if day is not None and day > ctx.store.now().date():
            raise SafetyError(f"{day.isoformat()} is in the future", where=name)
    saved = ctx.store.update_adverse_event(ae_id, ae.model_dump(mode="json"),
                                           expected_version=version, actor=who.username,
                                           reason=reason)
    return adverse_event_view(saved)


def condition_question(condition: str) -> str:
    """The question a proposal's condition asks the clinician ("Does this hold: …?")."""
    return f"Does this hold: {condition}?"


def accepted_change(ctx: Services, loaded: Any, row: ActionRow, signer_name: str, *,
                     accept_unconfirmed: bool, condition_holds: bool | None,
                     days: int | None, percent: float | None, where: str = "action_id"
                     ) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """What accepting ``row`` applies to the calendar (and the course delay it adds), the
    checks first: its condition answered yes, an unconfirmed source accepted."""
    proposal = ProposedAction.model_validate(row.proposal)
    if not (proposal.requires_confirmation and proposal.changes_calendar):
        raise SafetyError(f"rule {proposal.rule_id} advises supportive care; there is nothing to "
                          "confirm", where=where)
    if proposal.condition and condition_holds is not True:
        raise SafetyError(f"the proposal applies only if {proposal.condition}; answer yes to "
                          "accept it, or decline it",
                          where="condition_holds" if where == "action_id" else f"condition_{row.id}")
    if proposal.unconfirmed and not accept_unconfirmed:
        raise SafetyError(f"rule {proposal.rule_id} is not confirmed against its source "
                          f"({proposal.source}); accept that explicitly to confirm the action",
                          where="accept_unconfirmed")
    at = now(ctx)
    if row.found_on is not None:  # a product's action always has it
        effective = date.fromisoformat(row.found_on)
    else:
        assert row.adverse_event_id is not None
        effective = date.fromisoformat(ctx.store.adverse_event(row.adverse_event_id).onset)
    try:
        confirmed = proposal.confirm(signer_name, at, accept_unconfirmed=accept_unconfirmed)
        journey = loaded.journey.with_action(
            loaded.protocol, confirmed, trial_id=loaded.protocol.id,
            patient_id=loaded.row.study_number, effective=effective, applied_at=at, days=days,
            percent=percent, accept_unconfirmed=accept_unconfirmed)
    except TrialdeskError as exc:
        raise plain(exc) from None
    applied = journey.actions[-1].model_dump(mode="json")
    added = journey.delays[len(loaded.journey.delays):]
    return applied, added[0].model_dump(mode="json") if added else None


def confirm_action(ctx: Services, who: Principal, study_number: str, action_id: int, *,
                   version: int, password: str, accept_unconfirmed: bool, days: int | None,
                   percent: float | None, reason: str, condition_holds: bool | None = None
                   ) -> dict[str, Any]:
    """A clinician confirms a proposed action with an e-signature (the password again); the
    action is applied to the calendar and the signature bound to what was applied. A
    proposal that depends on a condition is accepted only when the clinician says it holds."""
    loaded = load_journey(ctx, who, study_number, P.TOXICITY_CONFIRM)
    _, row = _own(lambda: ctx.store.toxicity_action(action_id), lambda r: r[0], study_number,
                  f"no toxicity action {action_id} of patient {study_number}")
    if row.status != "proposed":
        raise ConflictError(f"action {action_id} is already {row.status}", where="action_id")
    proposal = ProposedAction.model_validate(row.proposal)
    if not (proposal.requires_confirmation and proposal.changes_calendar):
        raise SafetyError(f"rule {proposal.rule_id} advises supportive care; there is nothing to "
                          "confirm", where="action_id")
    if proposal.condition and condition_holds is not True:
        raise SafetyError(f"the proposal applies only if {proposal.condition}; answer yes to "
                          "accept it, or decline it", where="condition_holds")
    if proposal.unconfirmed and not accept_unconfirmed:
        raise SafetyError(f"rule {proposal.rule_id} is not confirmed against its source "
                          f"({proposal.source}); accept that explicitly to confirm the action",
                          where="accept_unconfirmed")
    if version != row.version:
        raise ConflictError(f"action {action_id} changed (it is now version {row.version}; your "
                            f"copy is version {version}); reload it", where="version")
    signer = ctx.accounts.confirm_password(who, password)
    applied, delay = accepted_change(ctx, loaded, row, signer.full_name,
                                      accept_unconfirmed=accept_unconfirmed,
                                      condition_holds=condition_holds, days=days,
                                      percent=percent)
    saved = ctx.store.confirm_action(
        action_id, expected_version=version, journey_version=loaded.version, user_id=signer.id,
        meaning=SIGNATURE_MEANINGS[P.TOXICITY_CONFIRM], record_digest=digest(applied),
        applied=applied, delay=delay, reason=reason)
    return action_view(saved)


def term_grade_summary(rows: Sequence[AdverseEventRow]) -> dict[str, Any]:
    """Adverse events by term × worst grade per patient (patients counted once per term)."""
    worst: dict[tuple[str, str], int] = {}
    for r in rows:
        key = (r.term, r.study_number)
        worst[key] = max(worst.get(key, 0), r.grade)
    table: dict[str, list[int]] = {}
    for (term, _), grade in worst.items():
        table.setdefault(term, [0] * 5)[grade - 1] += 1
    return {"grades": [1, 2, 3, 4, 5], "events": len(rows),
            "patients": len({r.study_number for r in rows}),
            "rows": [{"term": t, "counts": c, "total": sum(c)} for t, c in sorted(table.items())],
            "serious": sum(1 for r in rows if r.document.get("seriousness")),
            "open_actions": sum(1 for r in rows for a in r.actions
                                if _status(a) == "proposed"),
            "triggered_rules": sorted({o["rule_id"] for r in rows
                                       for o in r.check.get("rules", [])
                                       if o.get("status") == Status.TRIGGERED.value})}
