"""The operations behind both the API and the pages, each checking the caller's role.

Every operation takes the :class:`Services` and the :class:`Principal`; it checks the
permission for the trial and site of the record it touches, validates the input, calls
the core (screening) and the store, and returns plain dictionaries. The API returns them
as JSON and the pages render them, so the two cannot disagree.

The patient journey (consent, enrolment, calendar, records, dose sign-off), adverse events
and toxicity actions, responses and the trial's outcomes live beside this module in
:mod:`~trialdesk.services.journeys`, :mod:`~trialdesk.services.safety`,
:mod:`~trialdesk.services.responses` and :mod:`~trialdesk.services.outcomes`. A new capability adds
an operation with its permission from :mod:`trialdesk.services.roles`, a route in the API and
the pages, and its row in the role × endpoint test; e-signatures go through
:func:`sign_record` or the store's signature in the same transaction.
"""

from __future__ import annotations

import csv
import io
from datetime import datetime
from typing import Any

from trialdesk.errors import AccessError, NotFoundError
from trialdesk.facts.patient import PatientRecord
from trialdesk.services.accounts import Principal
from trialdesk.services.catalogue import (
    age_at,
    checked_record,
    registry_page,
    resolution_hints,
    screen_now,
    study_prefix,
)
from trialdesk.services.context import Services, screening_moment
from trialdesk.services.locks import refuse_if_locked
from trialdesk.services.roles import SIGNATURE_MEANINGS, Permission
from trialdesk.store.audit import digest
from trialdesk.store.records import (
    AuditRow,
    EnrolmentRow,
    PatientRecordRow,
    ProtocolVersionRecord,
    ScreeningRow,
    SignatureRow,
)

P = Permission


# ---------------------------------------------------------------------------- trials


def trial_page(ctx: Services, trial_id: str, number: int | None = None) -> dict[str, Any]:
    version, compiled = ctx.catalogue.trial(trial_id, number)
    return registry_page(version, compiled, ctx.store.protocol_versions(trial_id))


def add_protocol_version(ctx: Services, who: Principal, trial_id: str,
                         document: dict[str, Any], reason: str) -> dict[str, Any]:
    """An amendment: a new protocol version (validated and compiled before it is stored)."""
    who.require(P.TRIAL_MANAGE, trial_id)
    if document.get("id") != trial_id:
        raise AccessError(f"the document is for trial '{document.get('id')}', not {trial_id}",
                          where="$.document.id", status=422)
    v = register_protocol(ctx, document, source="web", actor=who.username, reason=reason,
                          where="$.document")
    return {"trial_id": v.trial_id, "number": v.number, "label": v.label, "digest": v.digest}


def register_protocol(ctx: Services, document: dict[str, Any], *, source: str, actor: str,
                      reason: str, where: str, signature: tuple[int, str] | None = None
                      ) -> ProtocolVersionRecord:
    """Register a protocol document as its trial's next version (the first one creates the
    trial), validated and compiled before it is stored; the caller has checked who may.
    The same document as the latest version returns that version (nothing is written)."""
    from trialdesk.protocol.load import protocol_from_data

    protocol_from_data(document, source=where)
    return ctx.store.import_protocol(document, source=source, actor=actor, reason=reason,
                                     signature=signature)


# ---------------------------------------------------------------------------- patients


def _visible(who: Principal, row: PatientRecordRow, permission: Permission = P.PATIENT_READ
             ) -> None:
    who.require_user()
    if not who.can(permission, row.trial_id, row.site):
        if not who.can(P.PATIENT_READ, row.trial_id, row.site):
            # Another trial's (or site's) patient is not even confirmed to exist.
            raise NotFoundError(f"no patient '{row.study_number}'")
        raise AccessError(f"your role in {row.trial_id} does not allow {permission.value}")


def load_patient(ctx: Services, who: Principal, study_number: str,
                 permission: Permission = P.PATIENT_READ) -> PatientRecordRow:
    who.require_user()
    try:
        row = ctx.catalogue.kept(("patient", study_number),
                                 lambda: ctx.store.patient(study_number))
    except NotFoundError:
        raise NotFoundError(f"no patient '{study_number}'") from None
    _visible(who, row, permission)
    refuse_if_locked(ctx, study_number, permission)
    return row


def patient_summary(who: Principal, row: PatientRecordRow) -> dict[str, Any]:
    out: dict[str, Any] = {"study_number": row.study_number, "trial_id": row.trial_id,
                           "site": row.site, "version": row.version,
                           "updated_at": row.updated_at, "updated_by": row.updated_by}
    if who.can(P.PATIENT_IDENTIFIERS, row.trial_id, row.site):
        out["identifiers"] = row.identifiers
    return out


def list_patients(ctx: Services, who: Principal, *, trial_id: str | None, offset: int,
                  limit: int) -> dict[str, Any]:
    who.require_user()
    page = ctx.store.patients(who.scopes(P.PATIENT_READ), offset=offset, limit=limit,
                              trial_id=trial_id)
    items = []
    for row in page.items:
        enrolment = ctx.store.enrolment(row.study_number)
        screenings = ctx.store.screenings(row.study_number)
        items.append({**patient_summary(who, row),
                      "latest_verdict": screenings[0].verdict if screenings else None,
                      "enrolled_arm": enrolment.arm if enrolment else None,
                      "enrolled": enrolment is not None})
    return {"items": items, "total": page.total, "offset": page.offset, "limit": page.limit}


def create_patient(ctx: Services, who: Principal, *, trial_id: str, site: str,
                   record: PatientRecord, identifiers: dict[str, str], reason: str,
                   idempotency_key: str | None = None) -> PatientRecordRow:
    """A new patient; a retry with the same ``idempotency_key`` (by the same user, with the
    same request) gives the patient the first request made instead of a second one."""
    who.require(P.PATIENT_WRITE, trial_id, site)
    idempotency = None if idempotency_key is None else (
        digest({"user": who.username, "key": idempotency_key}),
        digest({"trial_id": trial_id, "site": site, "record": record.model_dump(mode="json"),
                "identifiers": identifiers, "reason": reason}))
    ctx.catalogue.trial(trial_id)  # the trial exists
    prefix = study_prefix(trial_id)
    # Checked under a provisional number; the store picks the number inside its transaction.
    record = record.model_copy(update={"patient_id": ctx.store.next_study_number(trial_id, prefix)})
    checked_record(record, today=ctx.store.now().date(), source="$.record")
    return ctx.store.add_numbered_patient(trial_id, prefix, site, record.model_dump(mode="json"),
                                          {k: v for k, v in identifiers.items() if v},
                                          actor=who.username, reason=reason,
                                          idempotency=idempotency)


def update_patient(ctx: Services, who: Principal, study_number: str, *, version: int,
                   record: PatientRecord | None, identifiers: dict[str, str] | None,
                   reason: str) -> PatientRecordRow:
    row = load_patient(ctx, who, study_number, P.PATIENT_WRITE)
    doc = None
    if record is not None:
        record = record.model_copy(update={"patient_id": row.study_number})
        checked_record(record, today=ctx.store.now().date(), source="$.record")
        doc = record.model_dump(mode="json")
    return ctx.store.update_patient(study_number, expected_version=version, record=doc,
                                    identifiers=identifiers, actor=who.username, reason=reason)


def _record_of(row: PatientRecordRow) -> PatientRecord:
    return PatientRecord.model_validate(row.record)


def screening_view(ctx: Services, sc: ScreeningRow) -> dict[str, Any]:
    _, compiled = ctx.catalogue.trial(sc.trial_id, sc.protocol_version_number)
    return {"id": sc.id, "created_at": sc.created_at, "created_by": sc.created_by,
            "patient_version": sc.patient_version,
            "protocol_version": {"number": sc.protocol_version_number,
                                 "label": sc.protocol_version_label},
            "result": sc.result, "hints": resolution_hints(compiled, sc.result),
            "signatures": [signature_view(s) for s in ctx.catalogue.kept(
                ("signatures", "screening", sc.id),
                lambda: ctx.store.signatures("screening", str(sc.id)))]}


def signature_view(s: SignatureRow) -> dict[str, Any]:
    return {"name": s.full_name, "username": s.username, "signed_at": s.signed_at,
            "meaning": s.meaning, "record_type": s.record_type, "record_id": s.record_id,
            "record_digest": s.record_digest, "manifestation": s.manifestation}


def _minute(text: str) -> str:
    """A stored moment as people read it: ``2026-11-21 12:00``."""
    try:
        return datetime.fromisoformat(text).strftime("%Y-%m-%d %H:%M")
    except ValueError:
        return text


def screening_out_of_date(row: PatientRecordRow, sc: ScreeningRow) -> str | None:
    """Why the stored screening ``sc`` no longer describes the patient's record, in words
    (None while it does). A screening names the record version it read; any later change
    to the record (a consent recorded, a question answered, a value corrected) makes a new
    version, and the screening is out of date until the patient is screened again."""
    if sc.patient_version == row.version:
        return None
    return (f"Screening {sc.id} of {_minute(sc.created_at)} (record version "
            f"{sc.patient_version}) is older than the record changed on "
            f"{_minute(row.updated_at)} (version {row.version}, by {row.updated_by}): "
            "screen again")


def screen_patient(ctx: Services, who: Principal, study_number: str, *,
                   as_of: datetime | None, reason: str) -> dict[str, Any]:
    """Screen a stored patient against its trial's current protocol version and store it."""
    row = load_patient(ctx, who, study_number, P.SCREENING_RUN)
    version, compiled = ctx.catalogue.trial(row.trial_id)
    result = screen_now(compiled, _record_of(row), screening_moment(ctx, as_of)).to_json()
    sc = ctx.store.add_screening(study_number, version.id, row.version, result,
                                 actor=who.username, reason=reason)
    return screening_view(ctx, sc)


def sign_record(ctx: Services, who: Principal, permission: Permission, *, study_number: str,
                record_type: str, record_id: str, content: Any, password: str,
                reason: str) -> SignatureRow:
    """The e-signature for any record of a patient (dose sign-off, toxicity action, ...):
    the password again, the meaning of the permission, bound to the digest of ``content``."""
    load_patient(ctx, who, study_number, permission)
    signer = ctx.accounts.confirm_password(who, password)
    return ctx.store.sign(signer.id, SIGNATURE_MEANINGS[permission], record_type, record_id,
                          digest(content), reason=reason, audit_id=study_number)


def enrolment_of(ctx: Services, study_number: str) -> EnrolmentRow | None:
    """The patient's enrolment (None: not enrolled), kept until the next write."""
    return ctx.catalogue.kept(("enrolment", study_number),
                              lambda: ctx.store.enrolment(study_number))


def enrolment_view(ctx: Services, study_number: str) -> dict[str, Any] | None:
    e = enrolment_of(ctx, study_number)
    if e is None:
        return None
    sc = ctx.catalogue.kept(("screening", e.screening_id),
                            lambda: ctx.store.screening(e.screening_id))
    return {"trial_id": e.trial_id, "arm": e.arm, "enrolled_at": e.enrolled_at,
            "enrolled_by": e.enrolled_by,
            "protocol_version": {"number": e.protocol_version_number,
                                 "label": e.protocol_version_label},
            "screening_id": e.screening_id, "signature": signature_view(e.signature),
            "signature_valid": digest(sc.result) == e.signature.record_digest,
            "version_id": e.protocol_version_id}


# ---------------------------------------------------------------------------- audit


def _audit_json(e: AuditRow) -> dict[str, Any]:
    return {"seq": e.seq, "at": e.at, "user": e.username, "action": e.action,
            "record_type": e.record_type, "record_id": e.record_id, "changes": e.changes,
            "reason": e.reason, "hash": e.hash}


def audit_trail(ctx: Services, who: Principal, *, trial_id: str, offset: int, limit: int,
                study_number: str | None = None) -> dict[str, Any]:
    """The audit entries of one trial's records that the caller may see."""
    who.require(P.AUDIT_READ, trial_id)
    if study_number is not None:
        row = load_patient(ctx, who, study_number, P.AUDIT_READ)
        ids = [row.study_number]
    else:
        scopes = [s for s in who.scopes(P.AUDIT_READ) if s[0] == trial_id]
        ids = [p.study_number for p in ctx.store.patients(scopes, limit=1_000_000).items]
        whole_trial = any(site is None for _, site in scopes)
        if whole_trial:
            ids += [f"{trial_id}#{v.number}" for v in ctx.store.protocol_versions(trial_id)]
            ids += [f"{trial_id}/{r.id}" for r in ctx.catalogue.trial(trial_id)[1]
                    .protocol.randomisations]
    page = ctx.store.audit_entries(record_ids=ids, offset=offset, limit=limit)
    return {"items": [_audit_json(e) for e in page.items], "total": page.total,
            "offset": page.offset, "limit": page.limit}


def audit_verify(ctx: Services, who: Principal) -> dict[str, Any]:
    who.require_user()
    if not who.can_anywhere(P.AUDIT_READ):
        raise AccessError("your roles do not allow audit.read")
    report = ctx.store.verify_audit()
    return {"intact": report.ok, "entries": report.entries, "head_hash": report.head_hash,
            "problems": report.problems}


# ---------------------------------------------------------------------------- exports


def deidentified_export(ctx: Services, who: Principal, trial_id: str) -> str:
    """CSV, one row per patient: no identifiers, no birth date (age in years instead)."""
    who.require(P.EXPORT_DEIDENTIFIED, trial_id)
    scopes = [s for s in who.scopes(P.EXPORT_DEIDENTIFIED) if s[0] == trial_id]
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(["study_number", "site", "sex", "age_years_at_screening", "diagnosis",
                "latest_verdict", "screening_protocol_version", "enrolled", "arm",
                "enrolment_protocol_version"])
    for row in ctx.store.patients(scopes, limit=1_000_000).items:
        screenings = ctx.store.screenings(row.study_number)
        latest = screenings[0] if screenings else None
        enrolment = ctx.store.enrolment(row.study_number)
        age = (age_at(row.record["birth_date"], datetime.fromisoformat(latest.as_of).date())
               if latest else "")
        w.writerow([row.study_number, row.site, row.record.get("sex") or "", age,
                    (row.record.get("diagnosis") or {}).get("primary", ""),
                    latest.verdict if latest else "",
                    latest.protocol_version_number if latest else "",
                    "yes" if enrolment else "no", enrolment.arm if enrolment else "",
                    enrolment.protocol_version_number if enrolment else ""])
    return out.getvalue()
