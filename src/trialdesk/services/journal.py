"""Bringing journey and randomisation files into the trial record, once.

Before the command line worked on the database, it kept one JSON file per patient journey
and the sealed allocation lists with their allocation logs under a data directory. This
service takes those documents (the command line reads the files) and writes them through
the store, every entry audited as imported:

* each allocation list is verified first (its digest, and regenerated from its seed) and
  so is every allocation of its log; a list that fails is refused naming the entry, and
  nothing of that trial is imported;
* each enrolled journey becomes a patient (the file's patient id kept as the hospital
  number, the patient record from the patient file it was enrolled with), its consents,
  the screening its enrolment froze, the enrolment (the signature is the importing
  user's, its meaning says where the enrolment came from), the allocation (the log's
  entry, which must be the list's next one), the body measurements, what happened to
  each event and the course delays;
* a second import finds each journey's patient (by trial and hospital number) and
  imports nothing again.

A journey with confirmed toxicity actions is refused: the journey file holds the action
but not the adverse event it answered, which the record needs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from trialdesk.enrolment.allocation import Allocation, verify_allocations
from trialdesk.enrolment.journey import Journey, journey_calendar
from trialdesk.enrolment.randomisation import AllocationList, verify_list
from trialdesk.errors import EnrolmentError, TrialdeskError
from trialdesk.facts.patient import Consent, PatientRecord
from trialdesk.services.accounts import Principal
from trialdesk.services.catalogue import checked_record, study_prefix
from trialdesk.services.context import Services
from trialdesk.services.roles import Permission
from trialdesk.store.audit import digest

P = Permission


@dataclass(frozen=True)
class JournalFiles:
    """One trial's files, read: allocation lists and logs by randomisation id, journeys by
    file name."""

    trial_id: str
    lists: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    logs: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    journeys: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)


@dataclass
class ImportReport:
    trial_id: str
    lists_imported: list[str] = field(default_factory=list)
    lists_present: list[str] = field(default_factory=list)
    patients_imported: list[tuple[str, str]] = field(default_factory=list)  # (file id, study no.)
    patients_present: list[tuple[str, str]] = field(default_factory=list)
    not_enrolled: list[str] = field(default_factory=list)


def _refuse(reason: str, where: str) -> EnrolmentError:
    return EnrolmentError(reason, where=where)


def _verified_list(trial_id: str, rid: str, doc: Mapping[str, Any],
                   log_doc: Mapping[str, Any] | None) -> tuple[AllocationList, list[Allocation]]:
    where = f"{trial_id}/randomisation/{rid}"
    try:
        lst = AllocationList.model_validate(doc)
        log = [Allocation.model_validate(a) for a in (log_doc or {}).get("allocations", [])]
    except (ValueError, TrialdeskError) as exc:
        raise _refuse(f"not an allocation list or log: {str(exc).splitlines()[0]}", where) from None
    report = verify_list(lst)
    if not report.ok:
        d = report.discrepancies[0]
        entry = f"entry {d.sequence}" if d.sequence else "the list"
        raise _refuse(f"{entry}: {d.problem}; nothing of {trial_id} was imported", where)
    if log_doc is not None and log_doc.get("list_digest") != lst.digest:
        raise _refuse("the allocation log belongs to another list (digest differs)",
                      f"{where}.log")
    checked = verify_allocations(lst, log)
    if not checked.ok:
        d = checked.discrepancies[0]
        who = f"patient {d.patient_id}: " if d.patient_id else ""
        raise _refuse(f"{who}{d.problem}; nothing of {trial_id} was imported", f"{where}.log")
    return lst, log


def _existing(ctx: Services, trial_id: str) -> dict[str, str]:
    """Hospital number → study number of the trial's patients."""
    page = ctx.store.patients([(trial_id, None)], limit=1_000_000, trial_id=trial_id)
    return {row.identifiers["hospital_number"]: row.study_number for row in page.items
            if row.identifiers.get("hospital_number")}


@dataclass(frozen=True)
class JournalPlan:
    """One trial's journal, checked and ready to import (nothing written yet)."""

    files: JournalFiles
    lists: Mapping[str, tuple[AllocationList, list[Allocation]]]
    journeys: Sequence[tuple[str, Journey]]
    not_enrolled: Sequence[str]


def check_journal(ctx: Services, who: Principal, files: JournalFiles,
                  patients: Mapping[str, PatientRecord]) -> JournalPlan:
    """Everything of one trial's journal checked before anything is written: the lists and
    logs verified, every journey readable and laying out, a patient file for each, no other
    list already in the record."""
    trial_id = files.trial_id
    who.require(P.TRIAL_MANAGE, trial_id)
    _, compiled = ctx.catalogue.trial(trial_id)
    protocol = compiled.protocol
    verified = {rid: _verified_list(trial_id, rid, doc, files.logs.get(rid))
                for rid, doc in files.lists.items()}
    existing = _existing(ctx, trial_id)
    for rid, (lst, log) in verified.items():
        where = f"{trial_id}/randomisation/{rid}"
        found = ctx.store.allocation_list_info(trial_id, rid)
        if found is not None and found.digest != lst.digest:
            raise _refuse(f"the record already holds another list for {rid} "
                          f"(sha256 {found.digest[:12]}); nothing of {trial_id} was imported",
                          where)
        sealed = ctx.store.sealed_allocations(trial_id, rid)
        taken = {(d["stratum"], d["sequence"]): d["patient_id"] for d in (sealed or (None, []))[1]}
        for a in log:
            holder = taken.get((a.stratum, a.sequence))
            if holder is not None and holder != existing.get(a.patient_id):
                raise _refuse(f"entry {a.sequence} (stratum {a.stratum}) was allocated to "
                              f"{a.patient_id} in the file but to {holder} in the record; "
                              f"nothing of {trial_id} was imported", where)
    journeys: list[tuple[str, Journey]] = []
    not_enrolled: list[str] = []
    for name, doc in files.journeys.items():
        try:
            j = Journey.model_validate(doc)
        except (ValueError, TrialdeskError) as exc:
            raise _refuse(f"not a journey file: {str(exc).splitlines()[0]}", name) from None
        if j.trial_id != trial_id:
            raise _refuse(f"is a journey of {j.trial_id}, not {trial_id}", name)
        if j.enrolment is None:
            not_enrolled.append(j.patient_id)
            continue
        if j.actions:
            raise _refuse(f"patient {j.patient_id} has {len(j.actions)} confirmed toxicity "
                          "action(s); the file does not hold the adverse events they answered, "
                          "so they cannot be imported: record them in the trial record", name)
        if j.start is not None and j.arm is not None:
            try:
                journey_calendar(protocol, j)  # it must still lay out before anything is stored
            except TrialdeskError as exc:
                raise _refuse(str(exc), name) from None
        if j.patient_id not in patients:
            raise _refuse(f"no patient file for {j.patient_id}: give the patient files the "
                          "journeys were enrolled with", name)
        journeys.append((name, j))
    # Randomised patients are enrolled in the order they were allocated.
    order = {a.patient_id: (a.list_digest, i) for _, log in verified.values()
             for i, a in enumerate(log)}
    journeys.sort(key=lambda nj: order.get(nj[1].patient_id, ("", -1)))
    return JournalPlan(files, verified, journeys, not_enrolled)


def import_journal(ctx: Services, who: Principal, plan: JournalPlan,
                   patients: Mapping[str, PatientRecord], *, site: str,
                   source: str) -> ImportReport:
    """Import one checked trial journal (see the module). ``patients`` are the patient
    records by the files' patient id; ``source`` names the directory in the audit reasons."""
    trial_id = plan.files.trial_id
    user = who.require(P.TRIAL_MANAGE, trial_id)
    version, _ = ctx.catalogue.trial(trial_id)
    report = ImportReport(trial_id, not_enrolled=list(plan.not_enrolled))
    for rid, (lst, _) in plan.lists.items():
        if ctx.store.allocation_list_info(trial_id, rid) is None:
            ctx.store.create_allocation_list(
                trial_id, rid, digest=lst.digest, document=lst.model_dump(mode="json"),
                entries=len(lst.entries), actor=user.username,
                reason=f"imported from {source} (verified against its digest)")
            report.lists_imported.append(rid)
        else:
            report.lists_present.append(rid)
    existing = _existing(ctx, trial_id)
    for name, j in plan.journeys:
        if j.patient_id in existing:
            report.patients_present.append((j.patient_id, existing[j.patient_id]))
            continue
        number = _import_one(ctx, user.id, user.username, j, patients[j.patient_id],
                             version.id, site=site, reason=f"imported from {source}/{name}")
        report.patients_imported.append((j.patient_id, number))
    return report


def _import_one(ctx: Services, user_id: int, username: str, j: Journey,
                record: PatientRecord, version_id: int, *, site: str, reason: str) -> str:
    assert j.enrolment is not None
    store = ctx.store
    number = store.next_study_number(j.trial_id, study_prefix(j.trial_id))
    consent = j.consent
    if consent is None:
        raise _refuse(f"patient {j.patient_id} is enrolled without a consent", reason)
    facts = record.model_copy(update={"patient_id": number, "consents": [
        c for c in record.consents if c.trial_id != j.trial_id] + [Consent(
            trial_id=j.trial_id, signed=True, date=consent.signed_on, version=consent.version,
            signed_by=consent.signed_by.value, assent=consent.assent)]})
    checked_record(facts, today=store.now().date(), source="record")
    document = facts.model_dump(mode="json")
    row = store.add_patient(number, j.trial_id, site, document,
                            {"hospital_number": j.patient_id}, actor=username, reason=reason)
    consent_doc = consent.model_copy(update={"patient_id": number}).model_dump(mode="json")
    saved = store.add_consent(number, consent_doc, actor=username, reason=reason)
    screening = j.enrolment.screening.document
    sc = store.add_screening(number, version_id, row.version, screening, actor=username,
                             reason=reason)
    enrolment = j.enrolment.model_copy(update={"patient_id": number})
    allocation = j.allocation

    def allocate(list_doc: Mapping[str, Any], log: Sequence[Mapping[str, Any]]
                 ) -> Mapping[str, Any]:
        assert allocation is not None
        lst = AllocationList.model_validate(list_doc)
        made = [Allocation.model_validate(d) for d in log]
        mine = allocation.model_copy(update={"patient_id": number})
        if not verify_allocations(lst, [*made, mine]).ok:
            raise _refuse(f"the allocation of {j.patient_id} is not the list's next entry; "
                          "import the journeys in the order they were randomised", reason)
        return mine.model_dump(mode="json")

    o = enrolment.override
    store.enrol(
        number, sc.id, user_id,
        meaning=(f"Imported: enrolled on the command line by {enrolment.enrolled_by} at "
                 f"{enrolment.enrolled_at.isoformat(timespec='minutes')}"),
        record_digest=digest(screening), reason=reason,
        allocate=allocate if allocation is not None else None,
        randomisation_id=enrolment.randomisation if allocation is not None else None,
        journey={"document": enrolment.model_dump(mode="json"), "arm": j.arm,
                 "arm_basis": enrolment.arm_basis, "consent_id": saved.id,
                 "override_by": o.investigator if o else None,
                 "override_reason": o.reason if o else None,
                 "start": j.start.isoformat() if j.start else None,
                 "anchors": {k: v.isoformat(timespec="minutes")
                             for k, v in enrolment.anchors.items()},
                 "body": [b.model_dump(mode="json") for b in j.body]})
    current = store.journey(number)
    assert current is not None
    v = current.version
    for r in j.records:
        v = store.add_event_record(number, r.model_dump(mode="json"), expected_version=v,
                                   actor=username, reason=reason).version
    for d in j.delays:
        v = store.add_course_delay(number, d.model_dump(mode="json"), expected_version=v,
                                   actor=username, reason=reason).version
    return number
