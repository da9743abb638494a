"""Data queries, form review statuses and patient locks in the database.

The store keeps what the service layer decided; it checks only what needs the
transaction: a step names the query version it was based on (a stale one is refused), and
every change is one transaction with its audit entry, filed under the patient's study
number (record types ``data_query``, ``form_review`` and ``patient_lock``) so the patient's
and the trial's audit trail show each step.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

import trialdesk.store.models as m
from trialdesk.errors import ConflictError, NotFoundError
from trialdesk.store.base import StoreBase, Tx


@dataclass(frozen=True)
class QueryStepRow:
    action: str
    text: str
    value: str | None
    recorded_at: str
    recorded_by: str


@dataclass(frozen=True)
class QueryRow:
    id: int
    study_number: str
    trial_id: str
    site: str
    form: str
    field: str
    field_label: str
    value_seen: str
    question: str
    status: str
    opened_at: str
    opened_by: str
    updated_at: str
    updated_by: str
    version: int
    steps: tuple[QueryStepRow, ...]


@dataclass(frozen=True)
class ReviewRow:
    form: str
    status: str
    values_digest: str
    updated_at: str
    updated_by: str


@dataclass(frozen=True)
class LockRow:
    locked_at: str
    locked_by: str
    reason: str


def _patient(tx: Tx, study_number: str) -> m.Patient:
    p = tx.session.scalar(select(m.Patient).where(m.Patient.study_number == study_number))
    if p is None:
        raise NotFoundError(f"no patient '{study_number}'")
    return p


class QueryStore(StoreBase):
    """The data-query part of the store (opened on the same engine and clock)."""

    # ------------------------------------------------------------------ queries

    def _row(self, s: Any, q: m.DataQuery) -> QueryRow:
        p = s.get(m.Patient, q.patient_id)
        steps = s.scalars(select(m.DataQueryStep).where(m.DataQueryStep.query_id == q.id)
                          .order_by(m.DataQueryStep.id)).all()
        return QueryRow(q.id, p.study_number, q.trial_id, p.site, q.form, q.field,
                        q.field_label, q.value_seen, q.question, q.status, q.opened_at,
                        q.opened_by, q.updated_at, q.updated_by, q.version,
                        tuple(QueryStepRow(x.action, x.text, x.value, x.recorded_at,
                                           x.recorded_by) for x in steps))

    def open_query(self, study_number: str, *, form: str, field: str, field_label: str,
                   value_seen: str, question: str, actor: str) -> QueryRow:
        with self._write(actor) as tx:
            p = _patient(tx, study_number)
            q = m.DataQuery(patient_id=p.id, trial_id=p.trial_id, form=form, field=field,
                            field_label=field_label, value_seen=value_seen, question=question,
                            status="open", opened_at=tx.at, opened_by=actor, updated_at=tx.at,
                            updated_by=actor)
            tx.session.add(q)
            tx.session.flush()
            tx.session.add(m.DataQueryStep(query_id=q.id, action="open", text=question,
                                           value=None, recorded_at=tx.at, recorded_by=actor))
            tx.session.flush()
            tx.audit("query_open", "data_query", study_number,
                     {f"$.query[{q.id}]": {"old": None, "new": {
                         "form": form, "field": field_label, "value_seen": value_seen,
                         "question": question}}}, question)
            return self._row(tx.session, q)

    def query_step(self, query_id: int, *, expected_version: int, action: str, text: str,
                   value: str | None, status: str, actor: str) -> QueryRow:
        """A step (answer, correct, close, reopen) moving the query to ``status``."""
        with self._write(actor) as tx:
            q = tx.session.get(m.DataQuery, query_id, with_for_update=True)
            if q is None:
                raise NotFoundError(f"no data query {query_id}")
            if q.version != expected_version:
                raise ConflictError(
                    f"query {query_id} was changed by {q.updated_by} at {q.updated_at} (it is "
                    f"{q.status} now); reload it and try again", where="version")
            old = q.status
            q.status, q.updated_at, q.updated_by = status, tx.at, actor
            tx.session.add(m.DataQueryStep(query_id=q.id, action=action, text=text,
                                           value=value, recorded_at=tx.at, recorded_by=actor))
            tx.session.flush()
            p = tx.session.get(m.Patient, q.patient_id)
            assert p is not None
            changes: dict[str, Any] = {f"$.query[{q.id}].status": {"old": old, "new": status}}
            if value is not None:
                changes[f"$.query[{q.id}].corrected_value"] = {"old": None, "new": value}
            tx.audit(f"query_{action}", "data_query", p.study_number, changes, text)
            return self._row(tx.session, q)

    def data_query(self, query_id: int) -> QueryRow:
        with self._read() as s:
            q = s.get(m.DataQuery, query_id)
            if q is None:
                raise NotFoundError(f"no data query {query_id}")
            return self._row(s, q)

    def data_queries(self, *, study_number: str | None = None,
                     trial_ids: list[str] | None = None,
                     statuses: tuple[str, ...] | None = None) -> list[QueryRow]:
        with self._read() as s:
            stmt = select(m.DataQuery).order_by(m.DataQuery.id)
            if study_number is not None:
                stmt = stmt.join(m.Patient, m.Patient.id == m.DataQuery.patient_id).where(
                    m.Patient.study_number == study_number)
            if trial_ids is not None:
                stmt = stmt.where(m.DataQuery.trial_id.in_(trial_ids))
            if statuses is not None:
                stmt = stmt.where(m.DataQuery.status.in_(statuses))
            return [self._row(s, q) for q in s.scalars(stmt).all()]

    # ------------------------------------------------------------------ form reviews

    def set_form_review(self, study_number: str, form: str, status: str | None, *,
                        values_digest: str, actor: str, reason: str) -> None:
        """Set a form's review status (None: back to incomplete) for the form's values of
        ``values_digest``."""
        with self._write(actor) as tx:
            p = _patient(tx, study_number)
            row = tx.session.scalar(select(m.FormReview).where(
                m.FormReview.patient_id == p.id, m.FormReview.form == form))
            old = row.status if row is not None else None
            old_digest = row.values_digest if row is not None else None
            if old == status and old_digest in (None, values_digest):
                return
            if status is None:
                assert row is not None
                tx.session.delete(row)
            elif row is None:
                tx.session.add(m.FormReview(patient_id=p.id, form=form, status=status,
                                            values_digest=values_digest, updated_at=tx.at,
                                            updated_by=actor))
            else:
                row.status, row.values_digest = status, values_digest
                row.updated_at, row.updated_by = tx.at, actor
            tx.session.flush()
            changes: dict[str, Any] = {f"$.forms.{form}": {"old": old or "incomplete",
                                                           "new": status or "incomplete"}}
            if old_digest is not None and old_digest != values_digest:
                changes[f"$.forms.{form}.values_digest"] = {"old": old_digest,
                                                            "new": values_digest}
            tx.audit("form_status", "form_review", study_number, changes, reason)

    def form_reviews(self, study_number: str) -> dict[str, ReviewRow]:
        with self._read() as s:
            rows = s.scalars(select(m.FormReview).join(
                m.Patient, m.Patient.id == m.FormReview.patient_id).where(
                m.Patient.study_number == study_number)).all()
            return {r.form: ReviewRow(r.form, r.status, r.values_digest, r.updated_at,
                                      r.updated_by)
                    for r in rows}

    # ------------------------------------------------------------------ locks

    def _open_lock(self, s: Any, patient_id: int) -> m.PatientLock | None:
        found: m.PatientLock | None = s.scalar(select(m.PatientLock).where(
            m.PatientLock.patient_id == patient_id, m.PatientLock.unlocked_at.is_(None)))
        return found

    def lock_patient(self, study_number: str, *, actor: str, reason: str) -> LockRow:
        with self._write(actor) as tx:
            p = _patient(tx, study_number)
            if self._open_lock(tx.session, p.id) is not None:
                raise ConflictError(f"patient {study_number}'s record is already locked",
                                    where="lock")
            tx.session.add(m.PatientLock(patient_id=p.id, locked_at=tx.at, locked_by=actor,
                                         reason=reason))
            tx.audit("lock", "patient_lock", study_number,
                     {"$.locked": {"old": False, "new": True}}, reason)
            return LockRow(tx.at, actor, reason)

    def unlock_patient(self, study_number: str, *, actor: str, reason: str) -> None:
        with self._write(actor) as tx:
            p = _patient(tx, study_number)
            row = self._open_lock(tx.session, p.id)
            if row is None:
                raise ConflictError(f"patient {study_number}'s record is not locked",
                                    where="lock")
            row.unlocked_at, row.unlocked_by = tx.at, actor
            tx.audit("unlock", "patient_lock", study_number,
                     {"$.locked": {"old": True, "new": False}}, reason)

    def patient_lock(self, study_number: str) -> LockRow | None:
        with self._read() as s:
            pid = s.scalar(select(m.Patient.id).where(m.Patient.study_number == study_number))
            row = None if pid is None else self._open_lock(s, pid)
            return None if row is None else LockRow(row.locked_at, row.locked_by, row.reason)
