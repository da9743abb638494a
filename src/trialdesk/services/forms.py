"""Patients entered and edited through the trial's typed form (:mod:`trialdesk.forms`).

The form writes the same record as a JSON upload, through :func:`patients.create_patient`
and :func:`patients.update_patient` (same permissions, versions and audit trail); a signed
consent in the form is recorded through :func:`journeys.record_consent`, as on the patient
page, so enrolment finds it without typing it again. The
form page shows, beside each section, the state of the criteria it decides on the saved
record — a preview computed on the spot; a stored screening is still a separate step.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from trialdesk.enrolment.consent import record_consent as core_consent
from trialdesk.errors import TrialdeskError
from trialdesk.facts.patient import Consent, PatientRecord
from trialdesk.forms.build import PatientForm, patient_form
from trialdesk.forms.fill import form_values, merge_record
from trialdesk.forms.parse import FormError, has_course, parse_form
from trialdesk.forms.table import course_table, record_table, section_states
from trialdesk.services import journeys
from trialdesk.services.accounts import Principal
from trialdesk.services.catalogue import age_at, screen_now
from trialdesk.services.context import Services, screening_moment
from trialdesk.services.patients import create_patient, load_patient, screen_patient, update_patient
from trialdesk.services.roles import Permission
from trialdesk.store.records import PatientRecordRow

P = Permission


def trial_form(ctx: Services, trial_id: str) -> PatientForm:
    """The patient form of the trial's current protocol version."""
    return patient_form(ctx.catalogue.trial(trial_id)[1])


def questions(ctx: Services, trial_id: str) -> dict[str, str]:
    """Attestation id → question text, for the readable record."""
    compiled = ctx.catalogue.trial(trial_id)[1]
    asked = [c.attestation for _, c in compiled.protocol.criteria]
    asked += list(compiled.protocol.eligibility.attestations)
    return {a.id: a.question for a in asked if a is not None}


def new_form(ctx: Services, who: Principal, trial_id: str) -> dict[str, Any]:
    """The empty form and the sites the caller may register a patient at."""
    sites = [site for t, site in who.scopes(P.PATIENT_WRITE) if t == trial_id]
    if not sites:
        who.require(P.PATIENT_WRITE, trial_id)  # raises: the caller may not register here
    form = trial_form(ctx, trial_id)
    return {"form": form, "trial_id": trial_id, "sites": [s for s in sites if s],
            "states": {}, "verdict": None}


def _parse(ctx: Services, form: PatientForm, who: Principal, data: Mapping[str, Any],
           patient_id: str) -> PatientRecord:
    return parse_form(form, data, today=ctx.store.now().date(), patient_id=patient_id,
                      by=who.username)


# The consent fields of the form, by the name the consent rules give them.
_CONSENT_LABELS = {"version": "Consent form version", "signed_by": "Consent signed by",
                   "signed_on": "Informed consent signed for this trial: date",
                   "assent": "Child's assent", "recorded_by": "Consent signed by"}
CONSENT_REASON = "signed consent form received (entered in the patient form)"


def _signed_consent(record: PatientRecord, trial_id: str) -> Consent | None:
    """The signed consent for ``trial_id`` the form entered (None for "no" or no answer)."""
    found = [c for c in record.consents if c.trial_id == trial_id]
    return found[-1] if found and found[-1].signed else None


def _check_consent(ctx: Services, who: Principal, trial_id: str, record: PatientRecord,
                   consent: Consent) -> None:
    """The consent checked by the protocol's consent rules before anything is stored, the
    problem named by the form's label (a refused consent stores no patient)."""
    try:
        core_consent(ctx.catalogue.trial(trial_id)[1].protocol.consent, trial_id=trial_id,
                     patient_id=record.patient_id, birth_date=record.birth_date,
                     version=consent.version or "", signed_on=consent.date,
                     signed_by=consent.signed_by, assent=consent.assent,
                     recorded_by=who.require_user().full_name, recorded_at=journeys.now(ctx))
    except TrialdeskError as exc:
        field = (exc.where or "").removeprefix("consent.")
        label = _CONSENT_LABELS.get(field, "Informed consent signed for this trial")
        why = ("enter the version of the signed consent form, e.g. 1.0"
               if field == "version" else exc.reason)
        raise FormError([f"{label}: {why}"]) from None


def _record_consent(ctx: Services, who: Principal, study_number: str,
                    consent: Consent) -> None:
    """The form's signed consent as the patient's consent record: the same service, checks
    and audit entry as "Record consent" on the patient page."""
    journeys.record_consent(ctx, who, study_number, version=consent.version or "",
                            signed_on=consent.date, signed_by=consent.signed_by,
                            assent=consent.assent, reason=CONSENT_REASON)


def _consent_recorded(ctx: Services, study_number: str, trial_id: str,
                      consent: Consent) -> bool:
    """Is ``consent`` the latest consent recorded for the trial already?"""
    stored = [c.document for c in ctx.store.consents(study_number) if c.trial_id == trial_id]
    return bool(stored) and (stored[-1]["version"], stored[-1]["signed_on"],
                             stored[-1]["signed_by"], stored[-1].get("assent")) == (
        (consent.version or "").strip(), consent.date.isoformat(), consent.signed_by,
        consent.assent)


def create_from_form(ctx: Services, who: Principal, trial_id: str, *, site: str,
                     data: Mapping[str, Any], identifiers: dict[str, str], reason: str,
                     screen: bool) -> PatientRecordRow:
    """Register a patient from a submitted form; ``screen`` stores a screening too.

    A signed consent in the form is recorded as the patient's consent (what enrolment
    needs) before the screening, so the screening reads the record with it."""
    who.require(P.PATIENT_WRITE, trial_id, site)
    record = _parse(ctx, trial_form(ctx, trial_id), who, data, "new")
    consent = _signed_consent(record, trial_id)
    if consent is not None:
        _check_consent(ctx, who, trial_id, record, consent)
    row = create_patient(ctx, who, trial_id=trial_id, site=site, record=record,
                         identifiers=identifiers, reason=reason)
    if consent is not None:
        _record_consent(ctx, who, row.study_number, consent)
    if screen and who.can(P.SCREENING_RUN, trial_id, site):
        screen_patient(ctx, who, row.study_number, as_of=None, reason="screening after "
                                                                    "registration by form")
    return row


def update_from_form(ctx: Services, who: Principal, study_number: str, *, version: int,
                     data: Mapping[str, Any], reason: str, screen: bool) -> PatientRecordRow:
    """Write a submitted form into the stored record (see :mod:`trialdesk.forms.fill`).

    A change to a saved value needs a reason; saving an unchanged form changes nothing.
    """
    row = load_patient(ctx, who, study_number, P.PATIENT_WRITE)
    old = PatientRecord.model_validate(row.record)
    form = trial_form(ctx, row.trial_id)
    record = merge_record(old, _parse(ctx, form, who, data, row.study_number),
                          course=has_course(form))
    consent = _signed_consent(record, row.trial_id)
    if consent is not None and _consent_recorded(ctx, study_number, row.trial_id, consent):
        consent = None
    if consent is not None:
        _check_consent(ctx, who, row.trial_id, record, consent)
    if record.model_dump(mode="json") != row.record:
        if not reason.strip():
            raise FormError(["Reason for the change: a saved value changed; say why"])
        if len(reason) > 500:
            raise FormError(["Reason for the change: shorten it to 500 characters or fewer"])
        row = update_patient(ctx, who, study_number, version=version, record=record,
                             identifiers=None, reason=reason)
    if consent is not None:
        _record_consent(ctx, who, study_number, consent)
    if screen and who.can(P.SCREENING_RUN, row.trial_id, row.site):
        screen_patient(ctx, who, study_number, as_of=None,
                       reason=reason.strip() or "screening after saving the form")
    return row


def check(ctx: Services, who: Principal, trial_id: str, data: Mapping[str, Any], *,
          study_number: str | None = None) -> dict[str, Any]:
    """The section states and verdict the submitted values would give — written into the
    stored record of ``study_number`` if given — nothing stored ("Check" before saving;
    raises :class:`FormError` like saving would)."""
    who.require_user()
    compiled = ctx.catalogue.trial(trial_id)[1]
    form = patient_form(compiled)
    record = _parse(ctx, form, who, data, study_number or "check")
    if study_number is not None:
        row = load_patient(ctx, who, study_number, P.PATIENT_WRITE)
        record = merge_record(PatientRecord.model_validate(row.record), record,
                              course=has_course(form))
    result = screen_now(compiled, record, screening_moment(ctx, None)).to_json()
    return {"states": section_states(form, result), "verdict": result["verdict"],
            "arm": result["arm"], "as_of": result["as_of"],
            "course": _course(ctx, compiled, record)}


def _course(ctx: Services, compiled: Any, record: PatientRecord) -> list[dict[str, str]]:
    """The disease course's events and the facts derived from them, as rows."""
    rules = compiled.protocol.disease_course
    return course_table(record, rules=rules.rules() if rules else None,
                        on=screening_moment(ctx, None).date())


def form_page(ctx: Services, who: Principal, study_number: str) -> dict[str, Any]:
    """The stored patient in the trial's form, with each section's criteria and the verdict
    computed now from the saved record (not stored)."""
    row = load_patient(ctx, who, study_number, P.PATIENT_WRITE)
    compiled = ctx.catalogue.trial(row.trial_id)[1]
    form = patient_form(compiled)
    record = PatientRecord.model_validate(row.record)
    result = screen_now(compiled, record, screening_moment(ctx, None)).to_json()
    return {"form": form, "trial_id": row.trial_id, "study_number": study_number,
            "version": row.version, "values": form_values(form, record, row.trial_id),
            "states": section_states(form, result), "verdict": result["verdict"],
            "arm": result["arm"], "as_of": result["as_of"],
            "course": _course(ctx, compiled, record)}


def readable_record(ctx: Services, who: Principal, study_number: str) -> list[dict[str, Any]]:
    """The stored record as a table grouped like the form (no birth date for roles that
    may not see identifiers)."""
    row = load_patient(ctx, who, study_number)
    shown = who.can(P.PATIENT_IDENTIFIERS, row.trial_id, row.site)
    rules = ctx.catalogue.trial(row.trial_id)[1].protocol.disease_course
    return record_table(PatientRecord.model_validate(row.record),
                        questions=questions(ctx, row.trial_id), show_birth_date=shown,
                        course_rules=rules.rules() if rules else None,
                        on=screening_moment(ctx, None).date(),
                        age_years=None if shown else age_at(row.record["birth_date"],
                                                            ctx.store.now().date()))
