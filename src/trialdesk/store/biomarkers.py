"""Biomarker samples and results in the database.

A sample is taken for a sampling event of a patient's calendar; its results attach to it
later, one per fact of the dictionary. Like the journey, the store keeps the documents as
JSON and never interprets them: the service layer checks every change first.

* A sample is corrected in place under its ``version`` (a stale correction is refused
  naming who changed it); every correction is audited old → new with its reason.
* A result is written once. A correction is the next *revision* of the same sample and
  fact, naming the revision it corrects; the earlier revision stays, and the latest counts.
* A result also changes the patient's record (where screening reads its facts) in the same
  transaction: the service gives the change as a function of the stored record, applied
  under the writers' lock, so a result and its fact are saved together or not at all.

Every change is audited under the patient's study number (record types
``biomarker_sample`` and ``biomarker_result``; the patient's record as ``patient``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

import trialdesk.store.models as m
from trialdesk.errors import ConflictError, NotFoundError
from trialdesk.store.audit import canonical
from trialdesk.store.base import StoreBase, Tx, diff

PatientChange = Callable[[dict[str, Any], Mapping[str, Any] | None], dict[str, Any]]
"""Given the stored patient record and the result revision being corrected (None for a
first result), the patient record with the new result's entry."""


@dataclass(frozen=True)
class ResultRow:
    """One revision of a result (``document``: fact, value, unit, method, site, who, when)."""

    id: int
    sample_id: str
    fact: str
    revision: int
    document: dict[str, Any]
    recorded_at: str
    recorded_by: str


@dataclass(frozen=True)
class SampleRow:
    """A stored sample with every revision of its results (oldest first)."""

    id: int
    sample_id: str
    study_number: str
    trial_id: str
    site: str
    event_id: str
    collected_at: str
    document: dict[str, Any]
    recorded_at: str
    recorded_by: str
    updated_at: str
    updated_by: str
    version: int
    results: tuple[ResultRow, ...]

    def current(self) -> dict[str, ResultRow]:
        """The latest revision of each fact's result, by fact."""
        out: dict[str, ResultRow] = {}
        for r in self.results:
            if r.fact not in out or r.revision > out[r.fact].revision:
                out[r.fact] = r
        return out


def _sample(tx: Tx, sample_id: str) -> m.BiomarkerSample:
    row = tx.session.scalar(select(m.BiomarkerSample)
                            .where(m.BiomarkerSample.sample_id == sample_id))
    if row is None:
        raise NotFoundError(f"no sample '{sample_id}'", where="sample_id")
    return row


class BiomarkerStore(StoreBase):
    """The biomarker part of :class:`~trialdesk.store.Store`."""

    def _sample_rows(self, stmt: Any) -> list[SampleRow]:
        with self._read() as s:
            found = list(s.execute(stmt.join(m.Patient, m.Patient.id == m.BiomarkerSample.patient_id)
                                   .add_columns(m.Patient.study_number, m.Patient.site)
                                   .order_by(m.BiomarkerSample.collected_at, m.BiomarkerSample.id)))
            ids = [row.id for row, _, _ in found]
            results: dict[int, list[ResultRow]] = {}
            if ids:
                for r, key in s.execute(
                        select(m.BiomarkerResult, m.BiomarkerSample.sample_id)
                        .join(m.BiomarkerSample, m.BiomarkerSample.id == m.BiomarkerResult.sample_pk)
                        .where(m.BiomarkerResult.sample_pk.in_(ids))
                        .order_by(m.BiomarkerResult.id)):
                    results.setdefault(r.sample_pk, []).append(
                        ResultRow(r.id, key, r.fact, r.revision, json.loads(r.document),
                                  r.recorded_at, r.recorded_by))
            return [SampleRow(row.id, row.sample_id, study, row.trial_id, site, row.event_id,
                              row.collected_at, json.loads(row.document), row.recorded_at,
                              row.recorded_by, row.updated_at, row.updated_by, row.version,
                              tuple(results.get(row.id, ())))
                    for row, study, site in found]

    def biomarker_sample(self, sample_id: str) -> SampleRow | None:
        rows = self._sample_rows(select(m.BiomarkerSample)
                                 .where(m.BiomarkerSample.sample_id == sample_id))
        return rows[0] if rows else None

    def biomarker_samples(self, *, study_number: str | None = None,
                          trial_ids: Sequence[str] | None = None) -> list[SampleRow]:
        """Samples (with their results) of one patient or of trials, by collection time."""
        stmt = select(m.BiomarkerSample)
        if study_number is not None:
            stmt = stmt.where(m.Patient.study_number == study_number)
        if trial_ids is not None:
            stmt = stmt.where(m.BiomarkerSample.trial_id.in_(list(trial_ids)))
        return self._sample_rows(stmt)

    def add_biomarker_sample(self, study_number: str, document: Mapping[str, Any], *,
                             actor: str, reason: str,
                             event_record: Mapping[str, Any] | None = None,
                             journey_version: int | None = None) -> SampleRow:
        """A new sample of the patient (its identifier unique in the database); with
        ``event_record``, the sampling event is recorded done on the calendar in the same
        transaction (the calendar's version checked, so a stale one changes nothing)."""
        with self._write(actor) as tx:
            p = tx.session.scalar(select(m.Patient).where(m.Patient.study_number == study_number))
            if p is None:
                raise NotFoundError(f"no patient '{study_number}'")
            if event_record is not None:
                self._record_sampling_event(tx, p, event_record, journey_version, reason)
            row = m.BiomarkerSample(
                sample_id=str(document["sample_id"]), patient_id=p.id, trial_id=p.trial_id,
                event_id=str(document["event_id"]), collected_at=str(document["collected_at"]),
                document=canonical(dict(document)), recorded_at=tx.at, recorded_by=actor,
                updated_at=tx.at, updated_by=actor)
            tx.session.add(row)
            try:
                tx.session.flush()
            except IntegrityError:
                raise ConflictError(f"sample {document['sample_id']} is already recorded",
                                    where="sample_id") from None
            tx.audit("create", "biomarker_sample", study_number,
                     diff(None, dict(document), f"$.sample.{row.sample_id}"), reason)
        found = self.biomarker_sample(row.sample_id)
        assert found is not None
        return found

    @staticmethod
    def _record_sampling_event(tx: Tx, p: m.Patient, record: Mapping[str, Any],
                               expected_version: int | None, reason: str) -> None:
        j = tx.session.scalar(select(m.Journey).where(m.Journey.patient_id == p.id))
        if j is None:
            raise NotFoundError(f"patient {p.study_number} is not enrolled; there is no calendar")
        if j.version != expected_version:
            raise ConflictError(f"the calendar of {p.study_number} was changed by {j.updated_by} "
                                f"at {j.updated_at}; reload it and record the sample again",
                                where="version")
        j.updated_at = tx.at
        j.updated_by = tx.actor
        tx.session.add(m.EventRecord(
            journey_id=j.id, event_id=str(record["event_id"]), status=str(record["status"]),
            happened_at=str(record["at"]), amount=None, unit=None,
            document=canonical(dict(record)), recorded_at=tx.at, recorded_by=tx.actor))
        tx.audit("record", "event_record", p.study_number, diff(None, dict(record), "$.record"),
                 reason)

    def correct_biomarker_sample(self, sample_id: str, document: Mapping[str, Any], *,
                                 expected_version: int, actor: str, reason: str) -> SampleRow:
        """A corrected sample, compare-and-swap on its version (the old values audited)."""
        with self._write(actor) as tx:
            row = _sample(tx, sample_id)
            if row.version != expected_version:
                raise ConflictError(
                    f"sample {sample_id} was changed by {row.updated_by} at {row.updated_at} (it "
                    f"is now version {row.version}; your copy is version {expected_version}); "
                    "reload it and correct it again", where="version")
            old = json.loads(row.document)
            changes = diff(old, dict(document), f"$.sample.{sample_id}")
            if changes:
                row.document = canonical(dict(document))
                row.collected_at = str(document["collected_at"])
                row.updated_at = tx.at
                row.updated_by = actor
                tx.session.flush()
                study = tx.session.get(m.Patient, row.patient_id)
                assert study is not None
                tx.audit("correct", "biomarker_sample", study.study_number, changes, reason)
        found = self.biomarker_sample(sample_id)
        assert found is not None
        return found

    def add_biomarker_result(self, sample_id: str, document: Mapping[str, Any], *,
                             corrects: int | None, patient_change: PatientChange | None,
                             actor: str, reason: str) -> SampleRow:
        """A result of the sample (``corrects`` None), or the correction of revision
        ``corrects`` (refused when it is not the latest), with the patient record's change."""
        fact = str(document["fact"])
        with self._write(actor) as tx:
            sample = _sample(tx, sample_id)
            latest = tx.session.scalar(select(m.BiomarkerResult).where(
                m.BiomarkerResult.sample_pk == sample.id, m.BiomarkerResult.fact == fact)
                .order_by(m.BiomarkerResult.revision.desc()).limit(1))
            current = latest.revision if latest else 0
            if corrects is None and latest is not None:
                raise ConflictError(f"sample {sample_id} already has a {fact} result (revision "
                                    f"{current}); correct that result instead", where="fact")
            if corrects is not None and corrects != current:
                what = f"its latest is revision {current}" if current else "it has none"
                raise ConflictError(f"the {fact} result of {sample_id} to correct is revision "
                                    f"{corrects}, but {what}; reload it and correct it again",
                                    where="revision")
            old = json.loads(latest.document) if latest else None
            row = m.BiomarkerResult(sample_pk=sample.id, fact=fact, revision=current + 1,
                                    document=canonical(dict(document)), recorded_at=tx.at,
                                    recorded_by=actor)
            tx.session.add(row)
            try:
                tx.session.flush()
            except IntegrityError:
                raise ConflictError(f"another {fact} result of {sample_id} was recorded "
                                    "meanwhile; reload it", where="fact") from None
            p = tx.session.get(m.Patient, sample.patient_id)
            assert p is not None
            tx.audit("correct" if latest else "result", "biomarker_result", p.study_number,
                     diff(old, dict(document), f"$.sample.{sample_id}.{fact}"), reason)
            if patient_change is not None:
                record = json.loads(p.record)
                changed = patient_change(record, old)
                changes = diff(record, changed, "$.record")
                if changes:
                    p.record = canonical(changed)
                    p.updated_at = tx.at
                    p.updated_by = actor
                    tx.session.flush()
                    tx.audit("update", "patient", p.study_number, changes,
                             f"{reason} (result {fact} of sample {sample_id})")
        found = self.biomarker_sample(sample_id)
        assert found is not None
        return found
