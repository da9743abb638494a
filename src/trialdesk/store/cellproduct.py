"""Cell products in the database: DIN sequences, the product tree, release-test results,
signed release decisions, hand-overs, bedside verifications and infusions.

Like the journey, the store keeps the core values as JSON documents and never interprets
them; the service layer rebuilds the core values and checks every change first. A product's
custody is compare-and-swap: a hand-over names the product version it was checked against,
so of two hand-overs of one product at once one wins and the other is refused naming who
changed it. Every change is one transaction with its audit entry (record type
``cell_product``, filed under the product identifier; bedside checks and infusions under the
patient's study number).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

import trialdesk.store.models as m
from trialdesk.errors import ConflictError, NotFoundError
from trialdesk.store.audit import canonical
from trialdesk.store.base import Tx, diff
from trialdesk.store.clinical import ClinicalStore
from trialdesk.store.records import CellProductRow, ProductEntryRow

BuildProduct = Callable[[int], Mapping[str, Any]]
"""Given the DIN sequence number reserved for a collection, the collection's document."""

_Entry = m.CellProductTest | m.CellProductRelease | m.CellProductHandover | \
    m.CellProductVerification | m.CellProductInfusion


def _row(p: m.CellProduct, parent: str | None) -> CellProductRow:
    return CellProductRow(p.key, p.trial_id, p.spec_id, p.stage, parent, p.recipient,
                          json.loads(p.document), p.holder, p.location, p.storage, p.created_at,
                          p.created_by, p.updated_at, p.updated_by, p.version)


def _entry(e: _Entry, key: str | None) -> ProductEntryRow:
    return ProductEntryRow(e.id, key, json.loads(e.document), e.recorded_at, e.recorded_by)


def _product(tx: Tx, key: str) -> m.CellProduct:
    p = tx.session.scalar(select(m.CellProduct).where(m.CellProduct.key == key))
    if p is None:
        raise NotFoundError(f"no product {key}", where="product")
    return p


def _patient_id(tx: Tx, study_number: str) -> int:
    found = tx.session.scalar(select(m.Patient.id).where(m.Patient.study_number == study_number))
    if found is None:
        raise NotFoundError(f"no patient '{study_number}'", where="patient")
    return found


class CellProductStore(ClinicalStore):
    """The cell-product part of :class:`~trialdesk.store.Store`."""

    # ------------------------------------------------------------------ products

    def _reserve_din(self, tx: Tx, facility: str, year: int) -> int:
        row = tx.session.scalar(select(m.DinSequence).where(
            m.DinSequence.facility == facility, m.DinSequence.year == year).with_for_update())
        if row is None:
            row = m.DinSequence(facility=facility, year=year, last_seq=0)
            tx.session.add(row)
        row.last_seq += 1
        tx.session.flush()
        return row.last_seq

    def _insert(self, tx: Tx, doc: Mapping[str, Any], parent: m.CellProduct | None,
                reason: str) -> m.CellProduct:
        row = m.CellProduct(
            key=str(doc["id"]), din13=str(doc["din"]), flags=str(doc["flags"]),
            product_code=str(doc["product_code"]), trial_id=str(doc["trial"]),
            spec_id=str(doc["type"]), stage=str(doc["stage"]),
            parent_id=parent.id if parent else None, donor=str(doc["donor"]["id"]),
            recipient=doc.get("recipient"), expires_at=doc.get("expires_at"),
            document=canonical(dict(doc)), holder=str(doc["operator"]), location=doc.get("site"),
            storage=doc.get("storage"), created_at=tx.at, created_by=tx.actor, updated_at=tx.at,
            updated_by=tx.actor)
        tx.session.add(row)
        try:
            tx.session.flush()
        except IntegrityError:
            raise ConflictError(f"product {doc['id']} is already recorded",
                                where="product code") from None
        tx.audit("create", "cell_product", row.key, diff(None, dict(doc), "$.product"), reason)
        return row

    def add_collection(self, facility: str, year: int, build: BuildProduct, *, actor: str,
                       reason: str) -> CellProductRow:
        """A collection under the next DIN of ``facility`` and ``year`` (reserved in the same
        transaction, so a failed collection leaves a gap, never a duplicate)."""
        with self._write(actor) as tx:
            seq = self._reserve_din(tx, facility, year)
            row = self._insert(tx, build(seq), None, reason)
            return _row(row, None)

    def add_derived_product(self, parent_key: str, document: Mapping[str, Any], *, actor: str,
                            reason: str) -> CellProductRow:
        with self._write(actor) as tx:
            parent = _product(tx, parent_key)
            return _row(self._insert(tx, document, parent, reason), parent_key)

    def _parent_keys(self, ids: set[int | None]) -> dict[int, str]:
        wanted = {i for i in ids if i is not None}
        if not wanted:
            return {}
        with self._read() as s:
            return {i: k for i, k in s.execute(select(m.CellProduct.id, m.CellProduct.key)
                                               .where(m.CellProduct.id.in_(wanted)))}

    def _rows(self, stmt: Any) -> list[CellProductRow]:
        with self._read() as s:
            found = list(s.scalars(stmt.order_by(m.CellProduct.id)))
        parents = self._parent_keys({p.parent_id for p in found})
        return [_row(p, parents.get(p.parent_id) if p.parent_id else None) for p in found]

    def cell_product(self, key: str) -> CellProductRow | None:
        rows = self._rows(select(m.CellProduct).where(m.CellProduct.key == key))
        return rows[0] if rows else None

    def cell_products(self, *, trial_ids: Sequence[str] | None = None, din13: str | None = None,
                      recipient: str | None = None) -> list[CellProductRow]:
        """Products by trial, by DIN (one collection's whole tree) or by recipient."""
        stmt = select(m.CellProduct)
        if trial_ids is not None:
            stmt = stmt.where(m.CellProduct.trial_id.in_(list(trial_ids)))
        if din13 is not None:
            stmt = stmt.where(m.CellProduct.din13 == din13)
        if recipient is not None:
            stmt = stmt.where(m.CellProduct.recipient == recipient)
        return self._rows(stmt)

    # ------------------------------------------------------------------ entries

    def _entries(self, model: Any, keys: Sequence[str]) -> list[ProductEntryRow]:
        with self._read() as s:
            rows = s.execute(select(model, m.CellProduct.key)
                             .join(m.CellProduct, m.CellProduct.id == model.product_id)
                             .where(m.CellProduct.key.in_(list(keys))).order_by(model.id))
            return [_entry(e, k) for e, k in rows]

    def product_tests(self, keys: Sequence[str]) -> list[ProductEntryRow]:
        return self._entries(m.CellProductTest, keys)

    def product_releases(self, keys: Sequence[str]) -> list[ProductEntryRow]:
        return self._entries(m.CellProductRelease, keys)

    def product_handovers(self, keys: Sequence[str]) -> list[ProductEntryRow]:
        return self._entries(m.CellProductHandover, keys)

    def product_infusions(self, keys: Sequence[str]) -> list[ProductEntryRow]:
        return self._entries(m.CellProductInfusion, keys)

    def product_verifications(self, *, keys: Sequence[str] | None = None,
                              study_number: str | None = None) -> list[ProductEntryRow]:
        with self._read() as s:
            stmt = select(m.CellProductVerification, m.CellProduct.key).outerjoin(
                m.CellProduct, m.CellProduct.id == m.CellProductVerification.product_id)
            if keys is not None:
                stmt = stmt.where(m.CellProduct.key.in_(list(keys)))
            if study_number is not None:
                stmt = stmt.join(m.Patient, m.Patient.id == m.CellProductVerification.patient_id
                                 ).where(m.Patient.study_number == study_number)
            return [_entry(e, k) for e, k in s.execute(stmt.order_by(m.CellProductVerification.id))]

    def add_product_test(self, key: str, document: Mapping[str, Any], *, actor: str,
                         reason: str) -> ProductEntryRow:
        with self._write(actor) as tx:
            p = _product(tx, key)
            row = m.CellProductTest(product_id=p.id, test_id=str(document["test"]),
                                    document=canonical(dict(document)), recorded_at=tx.at,
                                    recorded_by=actor)
            tx.session.add(row)
            tx.session.flush()
            tx.audit("test", "cell_product", key, diff(None, dict(document), "$.test"), reason)
            return _entry(row, key)

    def add_product_release(self, key: str, document: Mapping[str, Any], *,
                            signers: Sequence[tuple[int, str]], record_digest: str, actor: str,
                            reason: str, proposals: Sequence[Mapping[str, Any]] = ()
                            ) -> ProductEntryRow:
        """A release decision with its e-signatures (user id, meaning), in one transaction.
        ``proposals`` (``rule_id``, ``kind``, ``proposal``, ``found_on``): the actions the
        protocol proposes for a product not released, kept as actions of its patient's
        journey awaiting an investigator's decision. A product released (an exceptional
        release after a failure) withdraws its actions still awaiting a decision."""
        with self._write(actor) as tx:
            p = _product(tx, key)
            row = m.CellProductRelease(product_id=p.id, released=bool(document["released"]),
                                       exceptional=bool(document["exceptional"]),
                                       document=canonical(dict(document)), recorded_at=tx.at,
                                       recorded_by=actor)
            tx.session.add(row)
            tx.session.flush()
            changes = diff(None, dict(document), "$.release")
            if proposals:
                journey_id = tx.session.scalar(
                    select(m.Journey.id).join(m.Patient, m.Patient.id == m.Journey.patient_id)
                    .where(m.Patient.study_number == p.recipient))
                if journey_id is None:
                    raise NotFoundError(f"patient {p.recipient} of product {key} has no "
                                        "calendar for the proposed actions")
                for i, prop in enumerate(proposals, start=1):
                    tx.session.add(m.ToxicityAction(
                        product_id=p.id, release_id=row.id, journey_id=journey_id, ordinal=i,
                        rule_id=str(prop["rule_id"]), kind=str(prop["kind"]),
                        proposal=canonical(prop["proposal"]), found_on=prop.get("found_on"),
                        status="proposed"))
                changes["proposed_actions"] = {"old": None, "new": [
                    f"{x['rule_id']}: {x['proposal'].get('kind')}" for x in proposals]}
            if row.released:
                pending = list(tx.session.scalars(select(m.ToxicityAction).where(
                    m.ToxicityAction.product_id == p.id, m.ToxicityAction.status == "proposed")))
                for a in pending:
                    a.status = "withdrawn"
                if pending:
                    changes["withdrawn_actions"] = {
                        "old": [f"{a.rule_id}: {a.kind}" for a in pending], "new": None}
            tx.session.flush()
            tx.audit("release", "cell_product", key, changes, reason)
            for user_id, meaning in signers:
                self._add_signature(tx, user_id, meaning, "product_release", f"{key}#{row.id}",
                                    record_digest, reason, key)
            return _entry(row, key)

    def add_product_handover(self, key: str, document: Mapping[str, Any], *,
                             expected_version: int, actor: str, reason: str) -> CellProductRow:
        """A hand-over, compare-and-swap on the product's version: a stale one changes
        nothing and is refused naming who changed the product and when."""
        with self._write(actor) as tx:
            p = _product(tx, key)
            if p.version != expected_version:
                raise ConflictError(
                    f"product {key} was changed by {p.updated_by} at {p.updated_at} (it is now "
                    f"version {p.version}; your copy is version {expected_version}); reload it "
                    "and record the hand-over again", where="version")
            done = tx.session.execute(
                update(m.CellProduct).where(m.CellProduct.id == p.id,
                                            m.CellProduct.version == expected_version)
                .values(holder=str(document["to"]), location=document.get("location"),
                        storage=document.get("storage"), updated_at=tx.at, updated_by=actor,
                        version=expected_version + 1)
                .execution_options(synchronize_session=False))
            if getattr(done, "rowcount", 1) != 1:
                raise ConflictError(f"product {key} was changed meanwhile; reload it",
                                    where="version")
            count = len(tx.session.scalars(select(m.CellProductHandover.id).where(
                m.CellProductHandover.product_id == p.id)).all())
            tx.session.add(m.CellProductHandover(product_id=p.id, sequence=count + 1,
                                                 document=canonical(dict(document)),
                                                 recorded_at=tx.at, recorded_by=actor))
            try:
                tx.session.flush()
            except IntegrityError:
                raise ConflictError(f"another hand-over of {key} was recorded meanwhile; reload "
                                    "it", where="version") from None
            tx.audit("handover", "cell_product", key, {
                "holder": {"old": p.holder, "new": document["to"]},
                "location": {"old": p.location, "new": document.get("location")},
                **diff(None, dict(document), "$.handover")}, reason)
            tx.session.expire(p)
            tx.session.refresh(p)
            parent = tx.session.get(m.CellProduct, p.parent_id) if p.parent_id else None
            return _row(p, parent.key if parent else None)

    def add_product_verification(self, study_number: str, key: str | None, document: Mapping[str, Any],
                                 *, actor: str, reason: str) -> ProductEntryRow:
        """A bedside verification as checked, accepted or refused (refusals are kept too)."""
        with self._write(actor) as tx:
            pid = _patient_id(tx, study_number)
            product = tx.session.scalar(select(m.CellProduct).where(m.CellProduct.key == key)) \
                if key else None
            row = m.CellProductVerification(
                product_id=product.id if product else None, patient_id=pid,
                event_id=str(document["event"]), accepted=bool(document["accepted"]),
                document=canonical(dict(document)), recorded_at=tx.at, recorded_by=actor)
            tx.session.add(row)
            tx.session.flush()
            tx.audit("verify" if row.accepted else "refuse", "cell_product_verification",
                     study_number, diff(None, dict(document), "$.verification"), reason)
            return _entry(row, product.key if product else None)

    def add_product_infusion(self, key: str, study_number: str, check_id: int,
                             document: Mapping[str, Any], *, event_record: Mapping[str, Any],
                             expected_version: int, actor: str, reason: str) -> ProductEntryRow:
        """The infusion of a dose and the calendar event's record, in one transaction: a
        dose is given once, and only after the accepted verification ``check_id``."""
        with self._write(actor) as tx:
            product = _product(tx, key)
            check = tx.session.get(m.CellProductVerification, check_id)
            patient, j = self._journey_for_update(tx, study_number, expected_version)
            if check is None or not check.accepted or check.product_id != product.id or \
                    check.patient_id != patient.id or check.event_id != document["event"]:
                raise ConflictError("there is no accepted bedside verification of this product "
                                    "for this patient and event", where="verification")
            row = m.CellProductInfusion(product_id=product.id, patient_id=patient.id,
                                        check_id=check.id, event_id=str(document["event"]),
                                        document=canonical(dict(document)), recorded_at=tx.at,
                                        recorded_by=actor)
            tx.session.add(row)
            tx.session.add(m.EventRecord(
                journey_id=j.id, event_id=str(event_record["event_id"]),
                status=str(event_record["status"]), happened_at=str(event_record["at"]),
                amount=event_record.get("amount"), unit=event_record.get("unit"),
                document=canonical(dict(event_record)), recorded_at=tx.at, recorded_by=actor))
            try:
                tx.session.flush()
            except IntegrityError:
                raise ConflictError(f"{key} or the event {document['event']} is already recorded "
                                    "as given", where="product") from None
            tx.audit("infuse", "cell_product", key, diff(None, dict(document), "$.infusion"),
                     reason)
            tx.audit("record", "event_record", study_number,
                     diff(None, dict(event_record), "$.record"), reason)
            return _entry(row, key)
