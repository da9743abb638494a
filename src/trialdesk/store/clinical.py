"""The patient journey in the database: consents, calendar inputs, event records, course
delays, adverse events with their toxicity actions, response assessments, follow-up, and
sealed randomisation lists with their allocations.

The store keeps the core values as JSON documents (what the core validated is what is
stored) and never interprets them; the web layer rebuilds the core values and checks
every change against the patient's calendar *before* it asks the store to save it. So
that such a check cannot go stale, every change to a journey names the journey version it
was checked against (``expected_version``) and bumps it: a change based on a calendar that
someone else has changed meanwhile is refused with who changed it and when.

Every change is one transaction with its audit entries (filed under the patient's study
number). Child records are written once and never edited; a sealed allocation list and its
allocations are append-only in the database itself.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import flag_modified

import trialdesk.store.models as m
from trialdesk.errors import ConflictError, NotFoundError
from trialdesk.store.audit import canonical
from trialdesk.store.base import StoreBase, Tx, diff, signature_row
from trialdesk.store.records import (
    ActionRow,
    AdverseEventRow,
    AllocationListInfo,
    ConsentRow,
    FollowUpRow,
    JourneyRow,
    ResponseRow,
    SignatureRow,
)

Allocate = Callable[[Mapping[str, Any], Sequence[Mapping[str, Any]]], Mapping[str, Any]]
"""Given the sealed list's document and the allocations made so far (in order), the next
allocation's document: it must carry ``stratum``, ``sequence`` and ``arm``."""


def _load(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def _patient(tx: Tx, study_number: str) -> m.Patient:
    p = tx.session.scalar(select(m.Patient).where(m.Patient.study_number == study_number))
    if p is None:
        raise NotFoundError(f"no patient '{study_number}'")
    return p


def _stale(what: str, row: m.Journey | m.AdverseEvent | m.ToxicityAction, expected: int,
           who: str | None, when: str | None) -> ConflictError:
    by = f" by {who} at {when}" if who and when else ""
    return ConflictError(f"{what} was changed{by} (it is now version {row.version}; your copy is "
                         f"version {expected}); reload it and apply your change again",
                         where="version")


class ClinicalStore(StoreBase):
    """The journey part of :class:`~trialdesk.store.Store`."""

    # ------------------------------------------------------------------ consents

    def add_consent(self, study_number: str, document: Mapping[str, Any], *,
                    patient_record: Mapping[str, Any] | None = None,
                    expected_patient_version: int | None = None, actor: str,
                    reason: str) -> ConsentRow:
        """Store a signed consent; ``patient_record`` (when given) is the patient's record
        with the consent entered, saved in the same transaction if it changed."""
        with self._write(actor) as tx:
            p = _patient(tx, study_number)
            row = m.Consent(patient_id=p.id, trial_id=str(document["trial_id"]),
                            form_version=str(document["version"]),
                            signed_on=str(document["signed_on"]),
                            signed_by=str(document["signed_by"]), document=canonical(document),
                            recorded_at=tx.at, recorded_by=actor)
            tx.session.add(row)
            if patient_record is not None:
                if expected_patient_version is not None and p.version != expected_patient_version:
                    raise ConflictError(
                        f"patient {study_number} was changed by {p.updated_by} at {p.updated_at} "
                        f"(it is now version {p.version}); reload it and record the consent again",
                        where="version")
                changes = diff(json.loads(p.record), dict(patient_record), "$.record")
                if changes:
                    p.record = canonical(patient_record)
                    p.updated_at = tx.at
                    p.updated_by = actor
                    tx.audit("update", "patient", study_number, changes, reason)
            tx.session.flush()
            tx.audit("consent", "consent", study_number, {
                "consent_id": {"old": None, "new": row.id},
                "form_version": {"old": None, "new": row.form_version},
                "signed_on": {"old": None, "new": row.signed_on},
                "signed_by": {"old": None, "new": row.signed_by},
                "assent": {"old": None, "new": document.get("assent")}}, reason)
            return ConsentRow(row.id, study_number, row.trial_id, dict(document), row.recorded_at,
                              row.recorded_by)

    def consents(self, study_number: str) -> list[ConsentRow]:
        with self._read() as s:
            rows = s.execute(select(m.Consent, m.Patient.study_number)
                             .join(m.Patient, m.Patient.id == m.Consent.patient_id)
                             .where(m.Patient.study_number == study_number)
                             .order_by(m.Consent.id))
            return [ConsentRow(c.id, sn, c.trial_id, json.loads(c.document), c.recorded_at,
                               c.recorded_by) for c, sn in rows]

    # ------------------------------------------------------------------ journeys

    def _add_journey(self, tx: Tx, p: m.Patient, enrolment: m.Enrolment,
                     journey: Mapping[str, Any], allocate: Allocate | None,
                     randomisation_id: str | None, reason: str) -> None:
        """The calendar inputs of a new enrolment (and its allocation), in the enrolment's
        transaction."""
        consent = tx.session.get(m.Consent, int(journey["consent_id"]))
        if consent is None or consent.patient_id != p.id or consent.trial_id != enrolment.trial_id:
            raise NotFoundError(f"no consent {journey['consent_id']} of patient "
                                f"{p.study_number} in {enrolment.trial_id}", where="consent_id")
        row = m.Journey(enrolment_id=enrolment.id, patient_id=p.id, trial_id=enrolment.trial_id,
                        consent_id=consent.id, document=canonical(journey["document"]),
                        arm_basis=str(journey["arm_basis"]),
                        override_by=journey.get("override_by"),
                        override_reason=journey.get("override_reason"),
                        start_date=journey.get("start"),
                        anchors=canonical(dict(journey.get("anchors") or {})),
                        updated_at=tx.at, updated_by=tx.actor)
        tx.session.add(row)
        tx.session.flush()
        changes: dict[str, Any] = {
            "arm_basis": {"old": None, "new": row.arm_basis},
            "consent_id": {"old": None, "new": consent.id},
            "start": {"old": None, "new": row.start_date},
            "anchors": {"old": None, "new": json.loads(row.anchors) or None}}
        if row.override_by:
            changes["override"] = {"old": None,
                                   "new": f"{row.override_by}: {row.override_reason}"}
        tx.audit("journey", "journey", p.study_number, changes, reason)
        for doc in journey.get("body") or ():
            tx.session.add(m.BodyMeasurement(
                journey_id=row.id, measured_on=str(doc["on"]), weight_kg=doc.get("weight_kg"),
                height_cm=doc.get("height_cm"), document=canonical(doc), recorded_at=tx.at,
                recorded_by=tx.actor))
            tx.audit("record", "body", p.study_number, diff(None, dict(doc), "$.body"), reason)
        if allocate is not None:
            if randomisation_id is None:
                raise ValueError("an allocation needs the randomisation id")
            self._allocate(tx, p, row, randomisation_id, allocate, reason)

    def _allocate(self, tx: Tx, p: m.Patient, journey: m.Journey, randomisation_id: str,
                  allocate: Allocate, reason: str) -> None:
        lst = tx.session.scalar(select(m.AllocationList).where(
            m.AllocationList.trial_id == journey.trial_id,
            m.AllocationList.randomisation_id == randomisation_id))
        if lst is None:
            raise ConflictError(f"{journey.trial_id} has no sealed allocation list for "
                                f"randomisation {randomisation_id}; an administrator generates it "
                                "first", where="randomisation")
        log = [json.loads(a.document) for a in tx.session.scalars(
            select(m.Allocation).where(m.Allocation.list_id == lst.id).order_by(m.Allocation.id))]
        made = dict(allocate(json.loads(lst.document), log))
        row = m.Allocation(list_id=lst.id, journey_id=journey.id, stratum=str(made["stratum"]),
                           sequence=int(made["sequence"]), arm=str(made["arm"]),
                           document=canonical(made), allocated_at=tx.at)
        tx.session.add(row)
        try:
            tx.session.flush()
        except IntegrityError:
            raise ConflictError("that allocation was taken meanwhile; randomise again",
                                where="randomisation") from None
        enrolment = tx.session.get(m.Enrolment, journey.enrolment_id)
        assert enrolment is not None  # foreign key
        enrolment.arm = row.arm  # the arm the patient is on, wherever it is shown
        tx.session.flush()
        tx.audit("randomise", "allocation", p.study_number, {
            "arm": {"old": None, "new": row.arm}, "stratum": {"old": None, "new": row.stratum},
            "sequence": {"old": None, "new": row.sequence},
            "list_digest": {"old": None, "new": lst.digest}}, reason)

    def _journey_row(self, s: Session, j: m.Journey) -> JourneyRow:
        return self._journey_rows(s, [j])[0]

    @staticmethod
    def _journey_rows(s: Session, journeys: Sequence[m.Journey]) -> list[JourneyRow]:
        """The journeys with all they hold, read in seven statements whatever their
        number."""
        if not journeys:
            return []
        ids = [j.id for j in journeys]
        heads = {j.id: (p, e) for j, p, e in s.execute(
            select(m.Journey, m.Patient, m.Enrolment)
            .join(m.Patient, m.Patient.id == m.Journey.patient_id)
            .join(m.Enrolment, m.Enrolment.id == m.Journey.enrolment_id)
            .where(m.Journey.id.in_(ids)))}

        def by_journey(model: Any, order: Any) -> dict[int, list[dict[str, Any]]]:
            out: dict[int, list[dict[str, Any]]] = {}
            for r in s.scalars(select(model).where(model.journey_id.in_(ids)).order_by(order)):
                out.setdefault(r.journey_id, []).append(json.loads(r.document))
            return out

        consents: dict[tuple[int, str], list[dict[str, Any]]] = {}
        for c in s.scalars(select(m.Consent).where(m.Consent.patient_id.in_(
                {p.id for p, _ in heads.values()})).order_by(m.Consent.id)):
            consents.setdefault((c.patient_id, c.trial_id), []).append(json.loads(c.document))
        allocations = {a.journey_id: a for a in s.scalars(
            select(m.Allocation).where(m.Allocation.journey_id.in_(ids)))}
        actions: dict[int, list[dict[str, Any]]] = {}
        for a in s.scalars(select(m.ToxicityAction).where(
                m.ToxicityAction.journey_id.in_(ids), m.ToxicityAction.status == "confirmed")
                .order_by(m.ToxicityAction.confirmed_at, m.ToxicityAction.id)):
            if a.applied:
                actions.setdefault(a.journey_id, []).append(json.loads(a.applied))
        body = by_journey(m.BodyMeasurement, m.BodyMeasurement.id)
        records = by_journey(m.EventRecord, m.EventRecord.id)
        delays = by_journey(m.CourseDelay, m.CourseDelay.id)
        out = []
        for j in journeys:
            p, e = heads[j.id]
            allocation = allocations.get(j.id)
            arm = allocation.arm if allocation is not None else e.arm
            out.append(JourneyRow(
                j.id, p.study_number, j.trial_id, p.site, e.id, json.loads(j.document), arm,
                j.arm_basis, j.override_by, j.override_reason, j.start_date,
                json.loads(j.anchors), tuple(consents.get((p.id, j.trial_id), [])),
                json.loads(allocation.document) if allocation else None,
                tuple(body.get(j.id, [])), tuple(records.get(j.id, [])),
                tuple(delays.get(j.id, [])), tuple(actions.get(j.id, [])), e.enrolled_at,
                j.updated_at, j.updated_by, j.version))
        return out

    def journey(self, study_number: str) -> JourneyRow | None:
        """The patient's journey, or None when the patient has no calendar (not enrolled)."""
        return self.journeys([study_number])[study_number]

    def journeys(self, study_numbers: Sequence[str]) -> dict[str, JourneyRow | None]:
        """Each patient's journey (None: no calendar), read together."""
        out: dict[str, JourneyRow | None] = dict.fromkeys(study_numbers)
        if not study_numbers:
            return out
        with self._read() as s:
            rows = s.scalars(select(m.Journey).join(m.Patient, m.Patient.id == m.Journey.patient_id)
                             .where(m.Patient.study_number.in_(set(study_numbers)))).all()
            for row in self._journey_rows(s, rows):
                out[row.study_number] = row
        return out

    def trial_journeys(self, trial_id: str) -> list[JourneyRow]:
        with self._read() as s:
            rows = s.scalars(select(m.Journey).join(m.Patient, m.Patient.id == m.Journey.patient_id)
                             .where(m.Journey.trial_id == trial_id)
                             .order_by(m.Patient.study_number)).all()
            return self._journey_rows(s, rows)

    def _journey_for_update(self, tx: Tx, study_number: str, expected_version: int
                            ) -> tuple[m.Patient, m.Journey]:
        p = _patient(tx, study_number)
        j = tx.session.scalar(select(m.Journey).where(m.Journey.patient_id == p.id))
        if j is None:
            raise NotFoundError(f"patient {study_number} is not enrolled; there is no calendar")
        if j.version != expected_version:
            raise _stale(f"the calendar of {study_number}", j, expected_version, j.updated_by,
                         j.updated_at)
        j.updated_at = tx.at
        j.updated_by = tx.actor
        # Every change bumps the version, also one by the same person in the same instant
        # (an unchanged row would not be written, and its version not moved).
        flag_modified(j, "updated_at")
        return p, j

    def update_journey(self, study_number: str, *, expected_version: int,
                       start: str | None = None, anchors: Mapping[str, str] | None = None,
                       actor: str, reason: str) -> JourneyRow:
        """Change the calendar settings (start date, clinical anchor times)."""
        with self._write(actor) as tx:
            _, j = self._journey_for_update(tx, study_number, expected_version)
            changes: dict[str, Any] = {}
            if start is not None and start != j.start_date:
                changes["start"] = {"old": j.start_date, "new": start}
                j.start_date = start
            if anchors is not None:
                old = json.loads(j.anchors)
                changes.update(diff(old, dict(anchors), "$.anchors"))
                j.anchors = canonical(dict(anchors))
            tx.session.flush()
            tx.audit("update", "journey", study_number, changes, reason)
            return self._journey_row(tx.session, j)

    def _add_child(self, study_number: str, expected_version: int, actor: str, reason: str,
                   make: Callable[[m.Journey, Tx], Any], record_type: str,
                   changes: Mapping[str, Any]) -> JourneyRow:
        with self._write(actor) as tx:
            _, j = self._journey_for_update(tx, study_number, expected_version)
            row = make(j, tx)
            tx.session.add(row)
            try:
                tx.session.flush()
            except IntegrityError:
                raise ConflictError(f"this {record_type.replace('_', ' ')} is already recorded",
                                    where="event_id") from None
            tx.audit("record", record_type, study_number, changes, reason)
            return self._journey_row(tx.session, j)

    def add_body_measurement(self, study_number: str, document: Mapping[str, Any], *,
                             expected_version: int, actor: str, reason: str) -> JourneyRow:
        def make(j: m.Journey, tx: Tx) -> m.BodyMeasurement:
            return m.BodyMeasurement(journey_id=j.id, measured_on=str(document["on"]),
                                     weight_kg=document.get("weight_kg"),
                                     height_cm=document.get("height_cm"),
                                     document=canonical(document), recorded_at=tx.at,
                                     recorded_by=actor)
        return self._add_child(study_number, expected_version, actor, reason, make, "body",
                               diff(None, dict(document), "$.body"))

    def add_event_record(self, study_number: str, document: Mapping[str, Any], *,
                         expected_version: int, actor: str, reason: str) -> JourneyRow:
        """What happened to one calendar event (one record per event)."""
        def make(j: m.Journey, tx: Tx) -> m.EventRecord:
            return m.EventRecord(journey_id=j.id, event_id=str(document["event_id"]),
                                 status=str(document["status"]), happened_at=str(document["at"]),
                                 amount=document.get("amount"), unit=document.get("unit"),
                                 document=canonical(document), recorded_at=tx.at,
                                 recorded_by=actor)
        return self._add_child(study_number, expected_version, actor, reason, make,
                               "event_record", diff(None, dict(document), "$.record"))

    def correct_event_record(self, study_number: str, document: Mapping[str, Any], *,
                             expected_version: int, actor: str, reason: str) -> JourneyRow:
        """A recorded event corrected (one record per event): its values replaced in one
        transaction; the audit keeps the old values beside the new with the reason."""
        with self._write(actor) as tx:
            _, j = self._journey_for_update(tx, study_number, expected_version)
            event_id = str(document["event_id"])
            row = tx.session.scalar(select(m.EventRecord).where(
                m.EventRecord.journey_id == j.id, m.EventRecord.event_id == event_id))
            if row is None:
                raise NotFoundError(f"{event_id} is not recorded on the calendar of "
                                    f"{study_number}")
            old = json.loads(row.document)
            row.status = str(document["status"])
            row.happened_at = str(document["at"])
            row.amount = document.get("amount")
            row.unit = document.get("unit")
            row.document = canonical(document)
            tx.session.flush()
            tx.audit("correct", "event_record", study_number,
                     diff(old, dict(document), "$.record"), reason)
            return self._journey_row(tx.session, j)

    def add_administration(self, study_number: str, document: Mapping[str, Any],
                           body: Mapping[str, Any] | None, *, expected_version: int,
                           actor: str, reason: str) -> JourneyRow:
        """An administration recorded at the bedside and, when the weight or height was
        measured on the day, that body measurement: both in one transaction, each audited."""
        with self._write(actor) as tx:
            _, j = self._journey_for_update(tx, study_number, expected_version)
            if body is not None:
                tx.session.add(m.BodyMeasurement(
                    journey_id=j.id, measured_on=str(body["on"]), weight_kg=body.get("weight_kg"),
                    height_cm=body.get("height_cm"), document=canonical(body), recorded_at=tx.at,
                    recorded_by=actor))
            tx.session.add(m.EventRecord(
                journey_id=j.id, event_id=str(document["event_id"]),
                status=str(document["status"]), happened_at=str(document["at"]),
                amount=document.get("amount"), unit=document.get("unit"),
                document=canonical(document), recorded_at=tx.at, recorded_by=actor))
            try:
                tx.session.flush()
            except IntegrityError:
                raise ConflictError("this event record is already recorded",
                                    where="event_id") from None
            if body is not None:
                tx.audit("record", "body", study_number, diff(None, dict(body), "$.body"),
                         reason)
            tx.audit("record", "event_record", study_number,
                     diff(None, dict(document), "$.record"), reason)
            return self._journey_row(tx.session, j)

    def add_course_delay(self, study_number: str, document: Mapping[str, Any], *,
                         expected_version: int, actor: str, reason: str) -> JourneyRow:
        def make(j: m.Journey, tx: Tx) -> m.CourseDelay:
            return _delay_row(j, document, tx.at, actor)
        return self._add_child(study_number, expected_version, actor, reason, make,
                               "course_delay", diff(None, dict(document), "$.delay"))

    # ------------------------------------------------------------------ course sign-off

    def sign_course(self, user_id: int, meaning: str, study_number: str, course_number: int,
                    record_digest: str, content: Mapping[str, Any], *,
                    reason: str) -> SignatureRow:
        """One e-signature on all the doses of a course, bound to ``record_digest`` (the
        digest of ``content``), with ``content`` kept as signed; audited under the patient."""
        with self._read() as s:
            u = s.get(m.User, user_id)
            if u is None:
                raise NotFoundError(f"no user {user_id}")
            username = u.username
        with self._write(username) as tx:
            p = _patient(tx, study_number)
            j = tx.session.scalar(select(m.Journey).where(m.Journey.patient_id == p.id))
            if j is None:
                raise NotFoundError(f"patient {study_number} is not enrolled; there is no "
                                    "calendar")
            sig = self._add_signature(tx, user_id, meaning, "course",
                                      f"{study_number}/c{course_number}", record_digest,
                                      reason, study_number)
            tx.session.add(m.CourseSignoff(signature_id=sig.id, journey_id=j.id,
                                           course_number=course_number,
                                           content=canonical(dict(content)), recorded_at=tx.at))
            tx.session.flush()
            return signature_row(sig)

    def course_signoffs(self, study_number: str) -> list[tuple[SignatureRow, int, dict[str, Any]]]:
        """Every course signature of the patient: (signature, course number, content as
        signed), oldest first."""
        return self.course_signoffs_of([study_number])[study_number]

    def course_signoffs_of(self, study_numbers: Sequence[str]
                           ) -> dict[str, list[tuple[SignatureRow, int, dict[str, Any]]]]:
        """:meth:`course_signoffs` of each patient, read in one statement."""
        out: dict[str, list[tuple[SignatureRow, int, dict[str, Any]]]] = {
            n: [] for n in study_numbers}
        if not study_numbers:
            return out
        with self._read() as s:
            rows = s.execute(
                select(m.CourseSignoff, m.Signature, m.Patient.study_number)
                .join(m.Signature, m.Signature.id == m.CourseSignoff.signature_id)
                .join(m.Journey, m.Journey.id == m.CourseSignoff.journey_id)
                .join(m.Patient, m.Patient.id == m.Journey.patient_id)
                .where(m.Patient.study_number.in_(set(study_numbers)))
                .order_by(m.CourseSignoff.id)).all()
            for c, sig, number in rows:
                out[number].append((signature_row(sig), c.course_number, json.loads(c.content)))
        return out

    # ------------------------------------------------------------------ adverse events

    def add_adverse_event(self, study_number: str, *, document: Mapping[str, Any],
                          lab: Mapping[str, Any] | None, check: Mapping[str, Any],
                          course_number: int | None, course_id: str | None,
                          proposals: Sequence[Mapping[str, Any]], expected_version: int,
                          actor: str, reason: str) -> AdverseEventRow:
        """An adverse event with the safety check made on entry and the actions its rules
        propose (``proposals``: ``rule_id``, ``kind``, ``proposal``, ``found_on``)."""
        with self._write(actor) as tx:
            _, j = self._journey_for_update(tx, study_number, expected_version)
            row = m.AdverseEvent(journey_id=j.id, term=str(document["term"]),
                                 grade=int(document["grade"]), onset=str(document["onset"]),
                                 course_number=course_number, course_id=course_id,
                                 document=canonical(document),
                                 lab=canonical(lab) if lab is not None else None,
                                 safety_check=canonical(check), recorded_at=tx.at,
                                 recorded_by=actor, updated_at=tx.at, updated_by=actor)
            tx.session.add(row)
            tx.session.flush()
            for i, prop in enumerate(proposals, start=1):
                tx.session.add(m.ToxicityAction(
                    adverse_event_id=row.id, journey_id=j.id, ordinal=i,
                    rule_id=str(prop["rule_id"]), kind=str(prop["kind"]),
                    proposal=canonical(prop["proposal"]), found_on=prop.get("found_on"),
                    status="proposed"))
            tx.session.flush()
            changes = {"adverse_event_id": {"old": None, "new": row.id},
                       **diff(None, dict(document), "$.adverse_event")}
            if lab is not None:
                changes["$.lab"] = {"old": None, "new": lab.get("rule")}
            changes["proposed_actions"] = {"old": None, "new": [
                f"{p['rule_id']}: {p['proposal'].get('kind')}" for p in proposals] or None}
            tx.audit("record", "adverse_event", study_number, changes, reason)
            return self._ae_row(tx.session, row)

    def update_adverse_event(self, ae_id: int, document: Mapping[str, Any], *,
                             expected_version: int, actor: str, reason: str,
                             course: tuple[int | None, str | None] | None = None,
                             check: Mapping[str, Any] | None = None,
                             proposals: Sequence[Mapping[str, Any]] | None = None
                             ) -> AdverseEventRow:
        """Save a follow-up or a correction of an adverse event, optimistically locked; the
        audit keeps every old value. ``course`` (number, id) when a corrected onset moved it;
        ``check`` and ``proposals``, the rules evaluated again on a correction: a proposal
        not yet made is added, one still awaiting a decision that is no longer made is
        withdrawn."""
        with self._write(actor) as tx:
            row = tx.session.get(m.AdverseEvent, ae_id)
            if row is None:
                raise NotFoundError(f"no adverse event {ae_id}")
            if row.version != expected_version:
                raise _stale(f"adverse event {ae_id}", row, expected_version, row.updated_by,
                             row.updated_at)
            changes = diff(json.loads(row.document), dict(document), "$.adverse_event")
            if course is not None and (row.course_number, row.course_id) != course:
                changes["$.adverse_event.course"] = {
                    "old": row.course_id and f"{row.course_number} ({row.course_id})",
                    "new": course[1] and f"{course[0]} ({course[1]})"}
                row.course_number, row.course_id = course
            if not changes:
                return self._ae_row(tx.session, row)
            if check is not None:
                row.safety_check = canonical(check)
            row.document = canonical(document)
            row.term = str(document["term"])
            row.grade = int(document["grade"])
            row.onset = str(document["onset"])
            row.updated_at = tx.at
            row.updated_by = actor
            tx.session.flush()
            if proposals is not None:  # after the event's own flush: one version step
                changes.update(self._reproposed(tx, row, proposals))
            tx.audit("update", "adverse_event", self._study(tx.session, row.journey_id),
                     {"adverse_event_id": {"old": ae_id, "new": ae_id}, **changes}, reason)
            return self._ae_row(tx.session, row)

    @staticmethod
    def _reproposed(tx: Tx, row: m.AdverseEvent, proposals: Sequence[Mapping[str, Any]]
                    ) -> dict[str, dict[str, Any]]:
        def key(rule_id: str, proposal: Mapping[str, Any]) -> tuple[Any, ...]:
            return rule_id, proposal.get("kind"), proposal.get("agent")

        actions = list(tx.session.scalars(select(m.ToxicityAction).where(
            m.ToxicityAction.adverse_event_id == row.id).order_by(m.ToxicityAction.ordinal)))
        wanted = {key(str(p["rule_id"]), p["proposal"]): p for p in proposals}
        had = {key(a.rule_id, json.loads(a.proposal)): a for a in actions}
        withdrawn = [a for k, a in had.items() if k not in wanted and a.status == "proposed"]
        for a in withdrawn:
            a.status = "withdrawn"
        added = [p for k, p in wanted.items() if k not in had]
        for i, prop in enumerate(added, start=len(actions) + 1):
            tx.session.add(m.ToxicityAction(
                adverse_event_id=row.id, journey_id=row.journey_id, ordinal=i,
                rule_id=str(prop["rule_id"]), kind=str(prop["kind"]),
                proposal=canonical(prop["proposal"]), found_on=prop.get("found_on"),
                status="proposed"))
        out: dict[str, dict[str, Any]] = {}
        if added:
            out["proposed_actions"] = {"old": None, "new": [
                f"{p['rule_id']}: {p['proposal'].get('kind')}" for p in added]}
        if withdrawn:
            out["withdrawn_actions"] = {"old": [f"{a.rule_id}: {a.kind}" for a in withdrawn],
                                        "new": None}
        return out

    @staticmethod
    def _study(s: Session, journey_id: int) -> str:
        sn = s.scalar(select(m.Patient.study_number).join(
            m.Journey, m.Journey.patient_id == m.Patient.id).where(m.Journey.id == journey_id))
        assert sn is not None  # foreign keys
        return str(sn)

    @staticmethod
    def _action_row(s: Session, a: m.ToxicityAction, applied: Any = None,
                    sig: m.Signature | None = None,
                    product: m.CellProduct | None = None) -> ActionRow:
        """``applied`` and ``sig``: what was just decided (else as stored); ``product``:
        the action's cell product, when already read."""
        if sig is None and a.signature_id:
            sig = s.get(m.Signature, a.signature_id)
        if product is None and a.product_id is not None:
            product = s.get(m.CellProduct, a.product_id)
        return ActionRow(a.id, a.adverse_event_id, a.ordinal, a.rule_id, a.kind,
                         json.loads(a.proposal), a.found_on, a.status,
                         _load(a.applied) if applied is None else dict(applied),
                         signature_row(sig) if sig else None, a.version,
                         product.key if product is not None else None, a.release_id)

    def _ae_row(self, s: Session, row: m.AdverseEvent) -> AdverseEventRow:
        return self._ae_rows(s, [row])[0]

    @classmethod
    def _ae_rows(cls, s: Session, rows: Sequence[m.AdverseEvent]) -> list[AdverseEventRow]:
        """The events with their patients and actions, read in a few statements whatever
        their number (not a few per event)."""
        if not rows:
            return []
        journeys = {jid: (trial, study, site) for jid, trial, study, site in s.execute(
            select(m.Journey.id, m.Journey.trial_id, m.Patient.study_number, m.Patient.site)
            .join(m.Patient, m.Patient.id == m.Journey.patient_id)
            .where(m.Journey.id.in_({r.journey_id for r in rows})))}
        actions: dict[int, list[m.ToxicityAction]] = {}
        for a in s.scalars(select(m.ToxicityAction)
                           .where(m.ToxicityAction.adverse_event_id.in_([r.id for r in rows]))
                           .order_by(m.ToxicityAction.ordinal)):
            actions.setdefault(a.adverse_event_id or 0, []).append(a)
        views = cls._action_rows(s, [a for group in actions.values() for a in group])
        out = []
        for row in rows:
            trial, study, site = journeys[row.journey_id]
            out.append(AdverseEventRow(
                row.id, study, trial, site, row.term, row.grade, row.onset, row.course_number,
                row.course_id, json.loads(row.document), _load(row.lab),
                json.loads(row.safety_check), row.recorded_at, row.recorded_by, row.updated_at,
                row.updated_by, row.version,
                tuple(views[a.id] for a in actions.get(row.id, []))))
        return out

    @classmethod
    def _action_rows(cls, s: Session, actions: Sequence[m.ToxicityAction]
                     ) -> dict[int, ActionRow]:
        """Stored actions as rows, their signatures and products read together."""
        sig_ids = {a.signature_id for a in actions if a.signature_id}
        sigs = {g.id: g for g in s.scalars(select(m.Signature).where(
            m.Signature.id.in_(sig_ids)))} if sig_ids else {}
        product_ids = {a.product_id for a in actions if a.product_id is not None}
        products = {c.id: c for c in s.scalars(select(m.CellProduct).where(
            m.CellProduct.id.in_(product_ids)))} if product_ids else {}
        return {a.id: cls._action_row(
            s, a, sig=sigs.get(a.signature_id) if a.signature_id else None,
            product=products.get(a.product_id) if a.product_id is not None else None)
            for a in actions}

    def adverse_event(self, ae_id: int) -> AdverseEventRow:
        with self._read() as s:
            row = s.get(m.AdverseEvent, ae_id)
            if row is None:
                raise NotFoundError(f"no adverse event {ae_id}")
            return self._ae_row(s, row)

    def adverse_events(self, study_number: str) -> list[AdverseEventRow]:
        with self._read() as s:
            rows = s.scalars(select(m.AdverseEvent)
                             .join(m.Journey, m.Journey.id == m.AdverseEvent.journey_id)
                             .join(m.Patient, m.Patient.id == m.Journey.patient_id)
                             .where(m.Patient.study_number == study_number)
                             .order_by(m.AdverseEvent.onset, m.AdverseEvent.id)).all()
            return self._ae_rows(s, rows)

    def trial_adverse_events(self, trial_id: str) -> list[AdverseEventRow]:
        with self._read() as s:
            rows = s.scalars(select(m.AdverseEvent)
                             .join(m.Journey, m.Journey.id == m.AdverseEvent.journey_id)
                             .where(m.Journey.trial_id == trial_id)
                             .order_by(m.AdverseEvent.id)).all()
            return self._ae_rows(s, rows)

    def toxicity_action(self, action_id: int) -> tuple[str, ActionRow]:
        """The action and the study number of its patient."""
        with self._read() as s:
            a = s.get(m.ToxicityAction, action_id)
            if a is None:
                raise NotFoundError(f"no toxicity action {action_id}")
            return self._study(s, a.journey_id), self._action_row(s, a)

    def product_actions(self, study_number: str) -> list[ActionRow]:
        """The actions proposed for the patient's cell products that were not released
        (manufacturing failures), oldest first."""
        with self._read() as s:
            rows = s.scalars(select(m.ToxicityAction)
                             .join(m.Journey, m.Journey.id == m.ToxicityAction.journey_id)
                             .join(m.Patient, m.Patient.id == m.Journey.patient_id)
                             .where(m.Patient.study_number == study_number,
                                    m.ToxicityAction.product_id.is_not(None))
                             .order_by(m.ToxicityAction.id))
            return [self._action_row(s, a) for a in rows]

    def confirm_action(self, action_id: int, *, expected_version: int, journey_version: int,
                       user_id: int, meaning: str, record_digest: str,
                       applied: Mapping[str, Any], delay: Mapping[str, Any] | None,
                       reason: str) -> ActionRow:
        """A clinician's confirmation of a proposed action: the e-signature, the action as
        applied to the calendar and (for a course delay) the delay, in one transaction."""
        username = self._signer(user_id)
        with self._write(username) as tx:
            a = tx.session.get(m.ToxicityAction, action_id)
            if a is None:
                raise NotFoundError(f"no toxicity action {action_id}")
            study_number = self._study(tx.session, a.journey_id)
            if a.version != expected_version:
                raise _stale(f"toxicity action {action_id}", a, expected_version,
                             a.confirmed_by, a.confirmed_at)
            if a.status != "proposed":
                raise ConflictError(f"toxicity action {action_id} is already {a.status} (by "
                                    f"{a.confirmed_by} at {a.confirmed_at})", where="action")
            _, j = self._journey_for_update(tx, study_number, journey_version)
            sig = self._add_signature(tx, user_id, meaning, "toxicity_action", str(action_id),
                                      record_digest, reason, study_number)
            a.status = "confirmed"
            a.applied = canonical(applied)
            a.signature_id = sig.id
            a.confirmed_at = tx.at
            a.confirmed_by = username
            if delay is not None:
                tx.session.add(_delay_row(j, delay, tx.at, username))
            tx.session.flush()
            tx.audit("confirm", "toxicity_action", study_number, {
                "action_id": {"old": None, "new": action_id},
                "rule_id": {"old": None, "new": a.rule_id},
                "status": {"old": "proposed", "new": "confirmed"},
                "applied": {"old": None, "new": applied.get("event_ids")},
                "delay": {"old": None, "new": dict(delay) if delay else None}}, reason)
            return self._action_row(tx.session, a, applied, sig)

    def decide_actions(self, *, accepted: Mapping[str, Any] | None,
                       declined: Sequence[Mapping[str, Any]], journey_version: int,
                       user_id: int, accept_meaning: str, decline_meaning: str,
                       reason: str) -> list[ActionRow]:
        """A clinician's decision on proposed actions, each signed, in one transaction:
        at most one accepted (``action_id``, ``expected_version``, ``applied``,
        ``record_digest``, ``delay``), applied to the calendar, and any number declined
        (``action_id``, ``expected_version``, ``decision``, ``record_digest``), the signed
        decision kept with the action."""
        username = self._signer(user_id)
        out: list[ActionRow] = []
        with self._write(username) as tx:
            study_number: str | None = None
            journey: m.Journey | None = None
            items = ([("accept", accepted)] if accepted is not None else []) + \
                [("decline", d) for d in declined]
            for what, item in items:
                action_id = int(item["action_id"])
                a = tx.session.get(m.ToxicityAction, action_id)
                if a is None:
                    raise NotFoundError(f"no toxicity action {action_id}")
                study_number = self._study(tx.session, a.journey_id)
                if a.version != int(item["expected_version"]):
                    raise _stale(f"toxicity action {action_id}", a,
                                 int(item["expected_version"]), a.confirmed_by, a.confirmed_at)
                if a.status != "proposed":
                    raise ConflictError(f"toxicity action {action_id} is already {a.status} "
                                        f"(by {a.confirmed_by} at {a.confirmed_at})",
                                        where="action")
                if journey is None:
                    _, journey = self._journey_for_update(tx, study_number, journey_version)
                sig = self._add_signature(
                    tx, user_id, accept_meaning if what == "accept" else decline_meaning,
                    "toxicity_action", str(action_id), str(item["record_digest"]), reason,
                    study_number)
                kept = item["applied"] if what == "accept" else item["decision"]
                a.status = "confirmed" if what == "accept" else "declined"
                a.applied = canonical(kept)
                a.signature_id = sig.id
                a.confirmed_at = tx.at
                a.confirmed_by = username
                if what == "accept" and item.get("delay") is not None:
                    tx.session.add(_delay_row(journey, item["delay"], tx.at, username))
                tx.session.flush()
                tx.audit("accept" if what == "accept" else "decline", "toxicity_action",
                         study_number, {
                             "action_id": {"old": None, "new": action_id},
                             "rule_id": {"old": None, "new": a.rule_id},
                             "status": {"old": "proposed", "new": a.status},
                             "decision": {"old": None, "new": dict(item.get("decision") or {})
                                          or None},
                             "applied": {"old": None, "new": kept.get("event_ids")},
                             "delay": {"old": None, "new": dict(item["delay"])
                                       if item.get("delay") else None}}, reason)
                out.append(self._action_row(tx.session, a, kept, sig))
        return out

    def _signer(self, user_id: int) -> str:
        with self._read() as s:
            u = s.get(m.User, user_id)
            if u is None:
                raise NotFoundError(f"no user {user_id}")
            return u.username

    # ------------------------------------------------------------------ responses, follow-up

    def add_response(self, study_number: str, *, criteria: str, kind: str, assessed_on: str,
                     overall: str | None, document: Mapping[str, Any],
                     result: Mapping[str, Any], expected_version: int, actor: str,
                     reason: str) -> ResponseRow:
        with self._write(actor) as tx:
            _, j = self._journey_for_update(tx, study_number, expected_version)
            row = m.ResponseAssessment(journey_id=j.id, criteria=criteria, kind=kind,
                                       assessed_on=assessed_on, overall=overall,
                                       document=canonical(document), result=canonical(result),
                                       recorded_at=tx.at, recorded_by=actor)
            tx.session.add(row)
            tx.session.flush()
            tx.audit("record", "response", study_number, {
                "response_id": {"old": None, "new": row.id},
                "criteria": {"old": None, "new": criteria}, "kind": {"old": None, "new": kind},
                "assessed_on": {"old": None, "new": assessed_on},
                "overall": {"old": None, "new": overall},
                **diff(None, dict(document), "$.assessment")}, reason)
            return _response(row, study_number)

    def responses(self, study_number: str) -> list[ResponseRow]:
        with self._read() as s:
            rows = s.scalars(select(m.ResponseAssessment)
                             .join(m.Journey, m.Journey.id == m.ResponseAssessment.journey_id)
                             .join(m.Patient, m.Patient.id == m.Journey.patient_id)
                             .where(m.Patient.study_number == study_number)
                             .order_by(m.ResponseAssessment.assessed_on,
                                       m.ResponseAssessment.id))
            return [_response(r, study_number) for r in rows]

    def add_follow_up(self, study_number: str, *, kind: str, occurred_on: str, note: str,
                      expected_version: int, actor: str, reason: str) -> FollowUpRow:
        with self._write(actor) as tx:
            _, j = self._journey_for_update(tx, study_number, expected_version)
            row = m.FollowUp(journey_id=j.id, kind=kind, occurred_on=occurred_on, note=note,
                             recorded_at=tx.at, recorded_by=actor)
            tx.session.add(row)
            tx.session.flush()
            tx.audit("record", "follow_up", study_number, {
                "kind": {"old": None, "new": kind}, "on": {"old": None, "new": occurred_on},
                "note": {"old": None, "new": note or None}}, reason)
            return FollowUpRow(row.id, study_number, kind, occurred_on, note, row.recorded_at,
                               actor)

    def add_imported_records(self, records: Mapping[str, Mapping[str, Sequence[Mapping[str, Any]]]], *,
                             versions: Mapping[str, int], actor: str, reason: str,
                             patients: Mapping[str, tuple[int, Mapping[str, Any]]] | None = None) -> int:
        """Body measurements (``body``) and follow-up facts (``follow_up``) of several
        enrolled patients, by study number, and their changed patient records (``patients``:
        expected version and new document), in ONE transaction with an audit entry each: an
        exchange file is stored whole or not at all. Returns how many records were added."""
        added = 0
        with self._write(actor) as tx:
            for study_number, (version, document) in (patients or {}).items():
                p = _patient(tx, study_number)
                if p.version != version:
                    raise ConflictError(f"patient {study_number} was changed by {p.updated_by} at "
                                        f"{p.updated_at}; import the file again", where="version")
                tx.audit("update", "patient", study_number,
                         diff(json.loads(p.record), dict(document), "$.record"), reason)
                p.record = canonical(document)
                p.updated_at, p.updated_by = tx.at, actor
            for study_number, kinds in records.items():
                _, j = self._journey_for_update(tx, study_number, versions[study_number])
                for doc in kinds.get("body", ()):
                    tx.session.add(m.BodyMeasurement(
                        journey_id=j.id, measured_on=str(doc["on"]), weight_kg=doc.get("weight_kg"),
                        height_cm=doc.get("height_cm"), document=canonical(doc), recorded_at=tx.at,
                        recorded_by=actor))
                    tx.audit("record", "body", study_number, diff(None, dict(doc), "$.body"), reason)
                    added += 1
                for f in kinds.get("follow_up", ()):
                    tx.session.add(m.FollowUp(journey_id=j.id, kind=f["kind"], occurred_on=f["occurred_on"],
                                              note=f.get("note") or "", recorded_at=tx.at, recorded_by=actor))
                    tx.audit("record", "follow_up", study_number, {
                        "kind": {"old": None, "new": f["kind"]}, "on": {"old": None, "new": f["occurred_on"]},
                        "note": {"old": None, "new": f.get("note") or None}}, reason)
                    added += 1
            tx.session.flush()
        return added

    def follow_ups(self, study_number: str) -> list[FollowUpRow]:
        with self._read() as s:
            rows = s.scalars(select(m.FollowUp)
                             .join(m.Journey, m.Journey.id == m.FollowUp.journey_id)
                             .join(m.Patient, m.Patient.id == m.Journey.patient_id)
                             .where(m.Patient.study_number == study_number)
                             .order_by(m.FollowUp.occurred_on, m.FollowUp.id))
            return [FollowUpRow(r.id, study_number, r.kind, r.occurred_on, r.note,
                                r.recorded_at, r.recorded_by) for r in rows]

    # ------------------------------------------------------------------ randomisation

    def create_allocation_list(self, trial_id: str, randomisation_id: str, *, digest: str,
                               document: Mapping[str, Any], entries: int, actor: str,
                               reason: str) -> AllocationListInfo:
        """Store a generated list once, sealed: the audit entry records its digest only."""
        with self._write(actor) as tx:
            if tx.session.get(m.Trial, trial_id) is None:
                raise NotFoundError(f"no trial '{trial_id}'")
            if tx.session.scalar(select(m.AllocationList).where(
                    m.AllocationList.trial_id == trial_id,
                    m.AllocationList.randomisation_id == randomisation_id)) is not None:
                raise ConflictError(f"{trial_id} already has a sealed list for randomisation "
                                    f"{randomisation_id}; a sealed list is never replaced",
                                    where="randomisation")
            row = m.AllocationList(trial_id=trial_id, randomisation_id=randomisation_id,
                                   digest=digest, document=canonical(document), entries=entries,
                                   created_at=tx.at, created_by=actor)
            tx.session.add(row)
            tx.session.flush()
            tx.audit("generate", "allocation_list", f"{trial_id}/{randomisation_id}", {
                "digest": {"old": None, "new": digest},
                "entries": {"old": None, "new": entries}}, reason)
            return AllocationListInfo(trial_id, randomisation_id, digest, entries, 0,
                                      row.created_at, actor)

    def allocation_list_info(self, trial_id: str, randomisation_id: str
                             ) -> AllocationListInfo | None:
        with self._read() as s:
            row = s.scalar(select(m.AllocationList).where(
                m.AllocationList.trial_id == trial_id,
                m.AllocationList.randomisation_id == randomisation_id))
            if row is None:
                return None
            made = s.scalar(select(func.count()).select_from(m.Allocation)
                            .where(m.Allocation.list_id == row.id)) or 0
            return AllocationListInfo(trial_id, randomisation_id, row.digest, row.entries, made,
                                      row.created_at, row.created_by)

    def sealed_allocations(self, trial_id: str, randomisation_id: str
                           ) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
        """The sealed list and its allocations, for verification inside the server only."""
        with self._read() as s:
            row = s.scalar(select(m.AllocationList).where(
                m.AllocationList.trial_id == trial_id,
                m.AllocationList.randomisation_id == randomisation_id))
            if row is None:
                return None
            log = [json.loads(a.document) for a in s.scalars(
                select(m.Allocation).where(m.Allocation.list_id == row.id)
                .order_by(m.Allocation.id))]
            return json.loads(row.document), log


def _delay_row(j: m.Journey, document: Mapping[str, Any], at: str, actor: str) -> m.CourseDelay:
    return m.CourseDelay(journey_id=j.id, course=int(document["course"]),
                         days=int(document["days"]), rule_id=document.get("rule_id"),
                         document=canonical(document), recorded_at=at, recorded_by=actor)


def _response(r: m.ResponseAssessment, study_number: str) -> ResponseRow:
    return ResponseRow(r.id, study_number, r.criteria, r.kind, r.assessed_on, r.overall,
                       json.loads(r.document), json.loads(r.result), r.recorded_at,
                       r.recorded_by)
