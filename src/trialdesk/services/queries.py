"""Data queries and monitoring (REDCap's data resolution workflow, OpenClinica's
discrepancy notes; ICH E6(R3) 3.11.4 source data verification by the monitor).

* A monitor opens a query on one field of one form of a patient's record: the form (a
  section of the trial's patient form, one recorded adverse event, or the doses given as
  the calendar records them), the field by its label, the value stored when the query was
  opened, and the question.
* The site (investigator, coordinator) answers it, or corrects the value with a reason:
  the correction is written through the patient form
  (:func:`trialdesk.services.forms.update_from_form`), so the record gets a new version
  and the audit trail its change, like any edit of the form; an adverse event's field is
  corrected through the event's own correction
  (:func:`trialdesk.services.safety_forms.correct_adverse_event`: its codes, course and the
  protocol's rules follow, the audit keeps the old value); a dose given is corrected on its
  own page (:func:`trialdesk.services.administrations.correct_administration`), then the
  query answered.
* The monitor closes the query or re-opens it.
* Each form of a patient has a status: incomplete, complete (the site), source-verified
  (a monitor, once the form is complete and none of its queries is open or answered) or
  locked (the administrator's lock of the patient's record). Any change of a verified
  form's values (a correction through a query, an edit of the form, an upload) makes it
  complete again: the verification was of the values seen.

Every step is one transaction with its audit entry, filed under the patient's study
number. Query statuses: ``open`` (waiting for the site), ``answered`` (waiting for the
monitor), ``closed``.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from trialdesk.errors import AccessError, FactError, NotFoundError, TrialdeskError
from trialdesk.facts.patient import PatientRecord
from trialdesk.forms.build import UNIT_TEXT, PatientForm, Section
from trialdesk.forms.fill import form_values
from trialdesk.schedule.records import EventRecord
from trialdesk.services import forms as form_ops
from trialdesk.services import journeys, safety, safety_forms
from trialdesk.services.accounts import Principal
from trialdesk.services.context import Services
from trialdesk.services.locks import query_store, refuse_if_locked
from trialdesk.services.patients import load_patient
from trialdesk.services.roles import Permission
from trialdesk.store.audit import digest
from trialdesk.store.queries import QueryRow
from trialdesk.store.records import AdverseEventRow, PatientRecordRow

P = Permission

STATUS_LABELS = {"open": "open, waiting for the site", "answered": "answered, waiting for "
                 "the monitor", "closed": "closed"}
FORM_STATUS_LABELS = {"incomplete": "incomplete", "complete": "complete",
                      "verified": "source-verified", "locked": "locked"}
WAITING = {"site": ("open",), "monitor": ("answered",)}
TEXT_MAX = 2000


def _text(value: str, label: str, most: int = TEXT_MAX) -> str:
    value = value.strip()
    if not value:
        raise FactError("write it; it cannot be empty", where=label)
    if len(value) > most:
        raise FactError(f"shorten it to {most} characters or fewer", where=label)
    return value


def _shown(values: dict[str, str], name: str) -> str:
    """A field's stored value as a person reads it (with unit and date when it has them)."""
    value = values.get(name, "")
    if not value:
        return "(empty)"
    unit = values.get(f"{name}.unit")
    when = values.get(f"{name}.date")
    out = f"{value} {UNIT_TEXT.get(unit, unit)}" if unit else value
    return f"{out} (on {when})" if when else out


def _form_of(ctx: Services, row: PatientRecordRow) -> tuple[PatientForm, dict[str, str]]:
    form = form_ops.trial_form(ctx, row.trial_id)
    values = form_values(form, PatientRecord.model_validate(row.record), row.trial_id)
    return form, values


def _values_digest(section: Section, values: dict[str, str]) -> str:
    """The digest of a form's values (with their units, dates and ranges)."""
    names = {f.name for f in section.fields}
    return digest({k: v for k, v in sorted(values.items())
                   if k in names or k.rsplit(".", 1)[0] in names})


def query_view(q: QueryRow) -> dict[str, Any]:
    from trialdesk.forms.build import SECTION_TITLES

    return {"id": q.id, "study_number": q.study_number, "trial_id": q.trial_id,
            "site": q.site, "form": q.form,
            "form_title": (_ae_title(ae_id) if (ae_id := _ae_id(q.form)) is not None
                           else DOSES_TITLE if q.form == DOSES_FORM
                           else SECTION_TITLES.get(q.form, q.form)),
            "kind": "adverse_event" if ae_id is not None
            else "dose" if q.form == DOSES_FORM else "form",
            "field": q.field, "field_label": q.field_label, "value_seen": q.value_seen,
            "question": q.question, "status": q.status,
            "status_label": STATUS_LABELS[q.status], "opened_at": q.opened_at,
            "opened_by": q.opened_by, "updated_at": q.updated_at, "updated_by": q.updated_by,
            "version": q.version,
            "steps": [{"action": s.action, "text": s.text, "value": s.value,
                       "at": s.recorded_at, "by": s.recorded_by} for s in q.steps]}


# ---------------------------------------------------------------------------- queries


def open_query(ctx: Services, who: Principal, study_number: str, *, field: str,
               question: str, form: str | None = None) -> dict[str, Any]:
    """A monitor's query on ``field``: a field name of the trial's patient form; with
    ``form`` an adverse event's form (``adverse_event_<id>``), one of :data:`AE_FIELDS`;
    with ``form`` :data:`DOSES_FORM`, the calendar event id of a recorded dose."""
    ae_id = _ae_id(form or "")
    if ae_id is not None:
        return _open_ae_query(ctx, who, study_number, ae_id, field=field, question=question)
    if form == DOSES_FORM:
        return _open_dose_query(ctx, who, study_number, field=field, question=question)
    row = load_patient(ctx, who, study_number, P.QUERY_REVIEW)
    patient_form, values = _form_of(ctx, row)
    if not patient_form.has(field) or (form and patient_form.field(field).section != form):
        raise FactError("choose one of the form's fields", where="Field")
    f = patient_form.field(field)
    q = query_store(ctx).open_query(study_number, form=f.section, field=f.name,
                                    field_label=f.label, value_seen=_shown(values, f.name),
                                    question=_text(question, "Question"), actor=who.username)
    return query_view(q)


def _query(ctx: Services, who: Principal, query_id: int, permission: Permission
           ) -> tuple[QueryRow, PatientRecordRow]:
    try:
        q = query_store(ctx).data_query(query_id)
    except NotFoundError:
        raise NotFoundError(f"no data query {query_id}") from None
    try:
        row = load_patient(ctx, who, q.study_number, permission)
    except NotFoundError:  # another trial's query is not even confirmed to exist
        raise NotFoundError(f"no data query {query_id}") from None
    return q, row


def query_page(ctx: Services, who: Principal, query_id: int) -> dict[str, Any]:
    q, row = _query(ctx, who, query_id, P.PATIENT_READ)
    trial, site = row.trial_id, row.site
    ae_id = _ae_id(q.form)
    if ae_id is not None or q.form == DOSES_FORM:  # clinical data: their readers only
        load_patient(ctx, who, q.study_number, P.CLINICAL_READ)
    if q.form == DOSES_FORM:
        found = [f for f in _dose_fields(ctx, who, q.study_number) if f["name"] == q.field]
        text = found[0]["value"] if found else ""
        now, writes, typed = text or "(not recorded)", P.ADMINISTRATION_RECORD, False
        link = (f"/patients/{q.study_number}/calendar/doses/{q.field}"
                if found and who.can(writes, trial, site) else None)
    elif ae_id is None:
        _, values = _form_of(ctx, row)
        now, text, writes = _shown(values, q.field), values.get(q.field, ""), P.PATIENT_WRITE
        typed, link = True, None
    else:
        event = _ae_row(ctx, q.study_number, ae_id)
        text = _ae_values(event)[q.field] if event else ""
        now, writes = text or "(empty)", P.ADVERSE_EVENT_RECORD
        typed = q.field in AE_TYPED and event is not None
        link = (f"/patients/{q.study_number}/adverse-events/{ae_id}/correction"
                if event and who.can(writes, trial, site) else None)
    locked = query_store(ctx).patient_lock(row.study_number) is not None
    site_may = not locked and q.status == "open" and who.can(P.QUERY_ANSWER, trial, site)
    return {**query_view(q), "value_now": now, "value_text": text, "locked": locked,
            "event_link": link, "link_text": "The dose's page (correct it there)"
            if q.form == DOSES_FORM else "The adverse event's correction page",
            "can_answer": site_may,
            "can_correct": site_may and typed and who.can(writes, trial, site),
            "can_review": not locked and who.can(P.QUERY_REVIEW, trial, site)}


def _step(ctx: Services, who: Principal, q: QueryRow, *, version: int, action: str,
          text: str, status: str, value: str | None = None) -> dict[str, Any]:
    return query_view(query_store(ctx).query_step(q.id, expected_version=version,
                                                  action=action, text=text, value=value,
                                                  status=status, actor=who.username))


def _require_status(q: QueryRow, *allowed: str) -> None:
    if q.status not in allowed:
        raise FactError(f"query {q.id} is {STATUS_LABELS[q.status]}; this step needs it "
                        f"{' or '.join(allowed)}", where="Query")


def answer_query(ctx: Services, who: Principal, query_id: int, *, version: int,
                 answer: str) -> dict[str, Any]:
    """The site's answer: the value is right as stored, and why."""
    q, _ = _query(ctx, who, query_id, P.QUERY_ANSWER)
    _require_status(q, "open")
    return _step(ctx, who, q, version=version, action="answer",
                 text=_text(answer, "Answer"), status="answered")


def correct_query(ctx: Services, who: Principal, query_id: int, *, version: int,
                  value: str, unit: str | None, reason: str) -> dict[str, Any]:
    """The site's correction: the new value written through the patient form (a new
    version of the record, audited with ``reason``) or through the adverse event's own
    correction, then the query answered with it."""
    q, row = _query(ctx, who, query_id, P.QUERY_ANSWER)
    _require_status(q, "open")
    reason = _text(reason, "Reason for the change", 500)
    value = _text(value, "Corrected value", 200)
    if q.form == DOSES_FORM:
        raise FactError("correct the dose on its own page (with a reason), then answer the "
                        "query", where=q.field_label)
    ae_id = _ae_id(q.form)
    if ae_id is not None:
        shown = _correct_ae(ctx, who, q, ae_id, value=value, reason=reason)
        return _step(ctx, who, q, version=version, action="correct", text=reason,
                     value=shown, status="answered")
    load_patient(ctx, who, q.study_number, P.PATIENT_WRITE)
    _, values = _form_of(ctx, row)
    data = {**values, q.field: value}
    if unit:
        data[f"{q.field}.unit"] = unit
    before = row.version
    saved = form_ops.update_from_form(ctx, who, q.study_number, version=row.version, data=data,
                                      reason=f"{reason} (data query {q.id})", screen=False)
    if saved.version == before:
        raise FactError("the value is the one stored; give an answer instead of a "
                        "correction", where="Corrected value")
    _, now = _form_of(ctx, saved)
    return _step(ctx, who, q, version=version, action="correct", text=reason,
                 value=_shown(now, q.field), status="answered")


def close_query(ctx: Services, who: Principal, query_id: int, *, version: int,
                note: str) -> dict[str, Any]:
    q, _ = _query(ctx, who, query_id, P.QUERY_REVIEW)
    _require_status(q, "open", "answered")
    return _step(ctx, who, q, version=version, action="close",
                 text=_text(note, "Note"), status="closed")


def reopen_query(ctx: Services, who: Principal, query_id: int, *, version: int,
                 note: str) -> dict[str, Any]:
    q, _ = _query(ctx, who, query_id, P.QUERY_REVIEW)
    _require_status(q, "answered", "closed")
    return _step(ctx, who, q, version=version, action="reopen",
                 text=_text(note, "Why it is re-opened"), status="open")


def open_queries(ctx: Services, who: Principal, *, role: str, waiting_for: str
                 ) -> list[dict[str, Any]]:
    """The queries waiting for the site (``open``) or the monitor (``answered``) in the
    trials and sites where the caller holds ``role``."""
    scopes = {(m.trial_id, m.site) for m in who.memberships if m.role == role}
    if not scopes:
        return []
    rows = query_store(ctx).data_queries(trial_ids=sorted({t for t, _ in scopes}),
                                         statuses=WAITING[waiting_for])
    return [query_view(q) for q in rows
            if any(t == q.trial_id and (s is None or s == q.site) for t, s in scopes)]


# ---------------------------------------------------------------------------- adverse events

#: An adverse event as a form of the patient's record: ``adverse_event_<id>``.
AE_FORM = "adverse_event_"
#: The fields of a recorded adverse event a monitor can query, in the order of its form.
AE_FIELDS = ("term", "grade", "onset", "resolution", "seriousness", "attributions",
             "expectedness", "action_taken", "outcome", "sponsor_aware_on")
#: Those corrected from the query page (one value typed); the others (sets of values) on
#: the event's own correction page.
AE_TYPED = frozenset({"term", "grade", "onset", "resolution", "expectedness",
                      "action_taken", "outcome", "sponsor_aware_on"})
_AE_DATES = frozenset({"onset", "resolution", "sponsor_aware_on"})


def _ae_id(form: str) -> int | None:
    """The event id of an adverse-event form id, None for a section of the patient form."""
    tail = form.removeprefix(AE_FORM)
    return int(tail) if tail != form and tail.isdigit() else None


def _ae_title(ae_id: int) -> str:
    return f"Adverse event {ae_id}"


def _ae_text(name: str, value: Any) -> str:
    """A stored field of an event as a person reads it ("" when it has none)."""
    if value in (None, "", [], ()):
        return ""
    if name == "attributions":
        return "; ".join(f"{a.get('agent')}: {a.get('attribution')}" for a in value)
    if name == "seriousness":
        return ", ".join(sorted(str(v).replace("_", " ") for v in value))
    return str(value).replace("_", " ") if name in ("action_taken", "outcome") else str(value)


def _ae_values(row: AdverseEventRow) -> dict[str, str]:
    return {name: _ae_text(name, row.document.get(name)) for name in AE_FIELDS}


def _ae_row(ctx: Services, study_number: str, ae_id: int) -> AdverseEventRow | None:
    return next((r for r in safety.adverse_events_of(ctx, study_number) if r.id == ae_id),
                None)


def _ae_event(ctx: Services, study_number: str, ae_id: int) -> AdverseEventRow:
    found = _ae_row(ctx, study_number, ae_id)
    if found is None:
        raise FactError("choose one of the patient's forms", where="Form")
    return found


def _ae_typed(name: str, text: str) -> Any:
    """A corrected value typed on the query page, as the event stores it."""
    label = safety_forms.label_of(name)
    if name == "grade":
        if not (text.isdigit() and 1 <= int(text) <= 5):
            raise FactError("enter a whole number from 1 to 5", where=label)
        return int(text)
    if name in _AE_DATES:
        try:
            return date.fromisoformat(text)
        except ValueError:
            raise FactError("enter a date such as 2026-11-21", where=label) from None
    return text.replace(" ", "_") if name in ("action_taken", "outcome") else text


def _open_ae_query(ctx: Services, who: Principal, study_number: str, ae_id: int, *,
                   field: str, question: str) -> dict[str, Any]:
    load_patient(ctx, who, study_number, P.QUERY_REVIEW)
    row = _ae_event(ctx, study_number, ae_id)
    if field not in AE_FIELDS:
        raise FactError("choose one of the event's fields", where="Field")
    value = _ae_values(row)[field] or "(empty)"
    q = query_store(ctx).open_query(study_number, form=f"{AE_FORM}{ae_id}", field=field,
                                    field_label=safety_forms.label_of(field),
                                    value_seen=value, question=_text(question, "Question"),
                                    actor=who.username)
    return query_view(q)


def _correct_ae(ctx: Services, who: Principal, q: QueryRow, ae_id: int, *, value: str,
                reason: str) -> str:
    """The event's field corrected with ``reason``; the value now, as read."""
    load_patient(ctx, who, q.study_number, P.ADVERSE_EVENT_RECORD)
    if q.field not in AE_TYPED:
        raise FactError("correct it on the event's own page, then answer the query",
                        where=q.field_label)
    row = _ae_event(ctx, q.study_number, ae_id)
    typed = _ae_typed(q.field, value)
    if _ae_text(q.field, typed) == _ae_values(row)[q.field]:
        raise FactError("the value is the one stored; give an answer instead of a "
                        "correction", where="Corrected value")
    try:
        safety_forms.correct_adverse_event(ctx, who, q.study_number, ae_id,
                                           version=row.version, values={q.field: typed},
                                           reason=f"{reason} (data query {q.id})")
    except AccessError:
        raise
    except TrialdeskError as exc:  # named by the field's label, as on the event's page
        raise FactError(exc.reason, where=safety_forms.label_of(exc.where)) from None
    return _ae_values(_ae_event(ctx, q.study_number, ae_id))[q.field] or "(empty)"


def _ae_forms(ctx: Services, study_number: str, reviews: dict[str, Any], lock: Any,
              qs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each recorded adverse event as a form of the monitoring page."""
    out = []
    for row in safety.adverse_events_of(ctx, study_number):
        form_id = f"{AE_FORM}{row.id}"
        values = _ae_values(row)
        out.append(_form_entry(form_id, f"{_ae_title(row.id)}: {row.term}, grade {row.grade}",
                               digest(values), reviews.get(form_id), lock, qs,
                               [{"name": n, "label": safety_forms.label_of(n),
                                 "value": values[n] or "(empty)"} for n in AE_FIELDS],
                               empty=sum(1 for n in AE_FIELDS if not values[n]),
                               link=f"/patients/{study_number}/adverse-events#ae-{row.id}"))
    return out


# ---------------------------------------------------------------------------- doses given

#: The doses given, as the calendar records them: one form, a field per recorded dose.
DOSES_FORM = "doses"
DOSES_TITLE = "Doses given (calendar records)"


def _dose_text(r: EventRecord) -> str:
    """A dose's record as a person reads it."""
    out = f"{r.status.value.replace('_', ' ')} {r.at:%Y-%m-%d %H:%M}"
    if r.amount is not None:
        out += f", {r.amount:g} {UNIT_TEXT.get(r.unit, r.unit) if r.unit else ''}".rstrip()
    d = r.details
    if d is not None and d.lot:
        out += f", lot {d.lot}"
    out += f", by {r.by}"
    return out + (f"; reason: {r.reason}" if r.reason else "")


def _dose_fields(ctx: Services, who: Principal, study_number: str) -> list[dict[str, str]]:
    """The recorded doses of an enrolled patient (name: the calendar event's id)."""
    try:
        loaded = journeys.load_journey(ctx, who, study_number)
    except (NotFoundError, AccessError):  # not enrolled, or a role that reads no calendar
        return []
    cal = loaded.calendar_or_none()
    if cal is None:
        return []
    out = []
    for r in loaded.journey.records:
        try:
            e = cal.event(r.event_id)
        except TrialdeskError:
            continue
        if e.dose is None or len(r.event_id) > 64:
            continue
        when = f"{e.date.isoformat()}" if e.date else "no date"
        course = f", course {e.course_number} day {e.course_day}" if e.course_number else ""
        out.append({"name": r.event_id, "label": f"{e.name} ({when}{course})",
                    "value": _dose_text(r)})
    return out


def _open_dose_query(ctx: Services, who: Principal, study_number: str, *, field: str,
                     question: str) -> dict[str, Any]:
    load_patient(ctx, who, study_number, P.QUERY_REVIEW)
    found = [f for f in _dose_fields(ctx, who, study_number) if f["name"] == field]
    if not found:
        raise FactError("choose one of the doses recorded", where="Field")
    q = query_store(ctx).open_query(study_number, form=DOSES_FORM, field=field,
                                    field_label=found[0]["label"][:200],
                                    value_seen=found[0]["value"],
                                    question=_text(question, "Question"), actor=who.username)
    return query_view(q)


# ---------------------------------------------------------------------------- forms


def _form_entry(form_id: str, title: str, now: str, review: Any, lock: Any,
                qs: list[dict[str, Any]], fields: list[dict[str, str]], *, empty: int,
                link: str | None = None, link_text: str = "The event's page"
                ) -> dict[str, Any]:
    """One form of the monitoring page: its status (a verification is of the values seen:
    a change since makes the form complete again), its fields and its open queries."""
    status = "locked" if lock else (review.status if review else "incomplete")
    changed = status == "verified" and review is not None and review.values_digest != now
    if changed:
        status = "complete"
    pending = [q for q in qs if q["form"] == form_id and q["status"] != "closed"]
    return {"id": form_id, "title": title, "status": status, "digest": now,
            "status_label": FORM_STATUS_LABELS[status] + (
                " (changed since it was source-verified)" if changed else ""),
            "updated_at": review.updated_at if review else None,
            "updated_by": review.updated_by if review else None,
            "pending_queries": len(pending), "empty": empty, "fields": fields, "link": link,
            "link_text": link_text}


def monitoring_page(ctx: Services, who: Principal, study_number: str) -> dict[str, Any]:
    """A patient's forms with their status and fields, and the patient's queries."""
    row = load_patient(ctx, who, study_number)
    form, values = _form_of(ctx, row)
    store = query_store(ctx)
    lock = store.patient_lock(study_number)
    reviews = store.form_reviews(study_number)
    trial, site = row.trial_id, row.site
    clinical = who.can(P.CLINICAL_READ, trial, site)  # the doses and events: clinical data
    qs = [view for q in store.data_queries(study_number=study_number)
          if (view := query_view(q))["kind"] == "form" or clinical]
    forms = [_form_entry(s.id, s.title, _values_digest(s, values), reviews.get(s.id), lock,
                         qs, [{"name": f.name, "label": f.label,
                               "value": _shown(values, f.name)} for f in s.fields],
                         empty=sum(1 for f in s.fields if not values.get(f.name)))
             for s in form.sections]
    doses = _dose_fields(ctx, who, study_number)
    if doses:
        forms.append(_form_entry(DOSES_FORM, DOSES_TITLE, digest(
            {f["name"]: f["value"] for f in doses}), reviews.get(DOSES_FORM), lock, qs, doses,
            empty=0, link=f"/patients/{study_number}/calendar", link_text="The calendar"))
    if clinical:
        forms += _ae_forms(ctx, study_number, reviews, lock, qs)
    return {"study_number": study_number, "trial_id": trial, "forms": forms, "queries": qs,
            "lock": None if lock is None else {"at": lock.locked_at, "by": lock.locked_by,
                                               "reason": lock.reason},
            "can_open": lock is None and who.can(P.QUERY_REVIEW, trial, site),
            "can_complete": lock is None and who.can(P.PATIENT_WRITE, trial, site),
            "can_lock": who.can(P.RECORD_LOCK, trial, site)}


def set_form_status(ctx: Services, who: Principal, study_number: str, form_id: str, *,
                    status: str, reason: str) -> dict[str, Any]:
    """``complete`` or ``incomplete`` by the site; ``verified`` (or back to ``complete``)
    by a monitor."""
    page = monitoring_page(ctx, who, study_number)
    found = [f for f in page["forms"] if f["id"] == form_id]
    if not found:
        raise FactError("choose one of the patient's forms", where="Form")
    current = found[0]["status"]
    if status not in ("incomplete", "complete", "verified"):
        raise FactError("choose incomplete, complete or verified", where="Status")
    if status == "verified" or current == "verified":
        load_patient(ctx, who, study_number, P.QUERY_REVIEW)
        if status == "incomplete":
            raise FactError(f"{found[0]['title']} is source-verified; a monitor makes it "
                            "complete again first", where="Status")
        if status == "verified" and current != "complete":
            raise FactError(f"{found[0]['title']} is {FORM_STATUS_LABELS[current]}; the site "
                            "marks it complete before it is verified", where="Status")
        if status == "verified" and found[0]["pending_queries"]:
            raise FactError(f"{found[0]['title']} has {found[0]['pending_queries']} query(ies) "
                            "not closed; close them before verifying", where="Status")
    else:
        load_patient(ctx, who, study_number, P.PATIENT_WRITE)
    query_store(ctx).set_form_review(study_number, form_id,
                                     None if status == "incomplete" else status,
                                     values_digest=found[0]["digest"],
                                     actor=who.username, reason=_text(reason, "Reason", 500))
    return monitoring_page(ctx, who, study_number)


def lock_record(ctx: Services, who: Principal, study_number: str, *, locked: bool,
                reason: str) -> dict[str, Any]:
    """The administrator locks (or unlocks) the patient's record."""
    row = load_patient(ctx, who, study_number)
    who.require(P.RECORD_LOCK, row.trial_id, row.site)
    reason = _text(reason, "Reason", 500)
    if locked:
        query_store(ctx).lock_patient(study_number, actor=who.username, reason=reason)
    else:
        query_store(ctx).unlock_patient(study_number, actor=who.username, reason=reason)
    return monitoring_page(ctx, who, study_number)


__all__ = ["AE_FIELDS", "answer_query", "close_query", "correct_query", "lock_record", "monitoring_page",
           "open_queries", "open_query", "query_page", "refuse_if_locked", "reopen_query",
           "set_form_status"]
