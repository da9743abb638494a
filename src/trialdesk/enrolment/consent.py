"""Informed consent: who signed which version when, checked against the protocol's rules.

A minor (younger than the protocol's ``consent.adult_age_years``) is consented by a
parent, guardian or legal representative, never by themself; from the protocol's
``consent.assent_from_age_years`` (when set) the child's own assent must be recorded as
given. An adult signs themself or through a guardian or legal representative (an adult
who cannot consent, e.g. in septic shock). The ages are protocol parameters with their
sources (NB-NK-2026, Refnot R-2 and RuMCeSS: Federal Law 61-FZ art. 43 part 5, trials
with children only with the written consent of their parents). A protocol without
consent rules records the signer unchecked, and the record says so.

>>> from trialdesk.protocol.model import ConsentRules, Param
>>> rules = ConsentRules(adult_age_years=Param(value=18, unit="year", source="example"))
>>> c = record_consent(rules, trial_id="NB-NK-2026", patient_id="NB-001",
...     birth_date=date(2019, 4, 12), version="1.0", signed_on=date(2026, 11, 18),
...     signed_by="parent", assent=None, recorded_by="coordinator",
...     recorded_at=datetime(2026, 11, 18, 10, 0))
>>> c.age_years, c.signed_by.value
(7, 'parent')
>>> record_consent(rules, trial_id="NB-NK-2026", patient_id="NB-001",
...     birth_date=date(2019, 4, 12), version="1.0", signed_on=date(2026, 11, 18),
...     signed_by="patient", assent=None, recorded_by="coordinator",
...     recorded_at=datetime(2026, 11, 18, 10, 0))
Traceback (most recent call last):
...
trialdesk.errors.EnrolmentError: consent.signed_by: the patient is 7 years old at signing, a \
minor (adult from 18): a parent, guardian or legal representative signs
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict

from trialdesk.errors import EnrolmentError
from trialdesk.protocol.model import ConsentRules, Param

__all__ = ["ConsentRecord", "Signer", "age_in_years", "record_consent"]


class Signer(StrEnum):
    PATIENT = "patient"
    PARENT = "parent"
    GUARDIAN = "guardian"
    LEGAL_REPRESENTATIVE = "legal_representative"


class ConsentRecord(BaseModel):
    """One signed consent form, as recorded."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    trial_id: str
    patient_id: str
    version: str
    signed_on: date
    signed_by: Signer
    assent: bool | None = None
    age_years: int
    recorded_by: str
    recorded_at: datetime
    notes: tuple[str, ...] = ()


def age_in_years(birth: date, on: date) -> int:
    """Completed years (a birthday counts on the day itself).

    >>> age_in_years(date(2008, 11, 18), date(2026, 11, 17)), age_in_years(date(2008, 11, 18),
    ...     date(2026, 11, 18))
    (17, 18)
    """
    return on.year - birth.year - ((on.month, on.day) < (birth.month, birth.day))


def _years(param: Param | None, field: str) -> int | None:
    if param is None or param.value is None:
        return None
    if isinstance(param.value, bool) or not isinstance(param.value, (int, float)):
        raise EnrolmentError(f"must be a number of years, got {param.value!r}",
                             where=f"protocol consent.{field}")
    return int(param.value)


def record_consent(
    rules: ConsentRules | None,
    *,
    trial_id: str,
    patient_id: str,
    birth_date: date,
    version: str,
    signed_on: date,
    signed_by: Signer | str,
    assent: bool | None,
    recorded_by: str,
    recorded_at: datetime,
) -> ConsentRecord:
    """Check a consent against the protocol's rules and return the record to store.

    Refused with an :class:`~trialdesk.errors.EnrolmentError` naming the field: an empty
    version or recorder, a signing date in the future or before birth, a minor signing
    for themself, a parent signing for an adult, missing or refused assent where the
    protocol requires it, assent recorded for an adult.
    """
    try:
        signer = Signer(signed_by)
    except ValueError:
        raise EnrolmentError(f"'{signed_by}' is not one of {', '.join(s.value for s in Signer)}",
                             where="consent.signed_by") from None
    if not version.strip():
        raise EnrolmentError("the consent form version is missing", where="consent.version")
    if not recorded_by.strip():
        raise EnrolmentError("must name who records the consent", where="consent.recorded_by")
    if signed_on > recorded_at.date():
        raise EnrolmentError(f"{signed_on.isoformat()} is after the day it is recorded "
                             f"({recorded_at.date().isoformat()})", where="consent.signed_on")
    if signed_on < birth_date:
        raise EnrolmentError(f"{signed_on.isoformat()} is before the birth date",
                             where="consent.signed_on")
    age = age_in_years(birth_date, signed_on)
    notes: list[str] = []
    adult_age = _years(rules.adult_age_years, "adult_age_years") if rules else None
    if adult_age is None:
        notes.append("the protocol sets no consent ages; the signer was not checked against "
                     "the patient's age")
        minor = None
    else:
        minor = age < adult_age
        if rules is not None and rules.adult_age_years.unconfirmed:
            notes.append(f"adult age {adult_age} [unconfirmed]")
    if minor and signer is Signer.PATIENT:
        raise EnrolmentError(
            f"the patient is {age} years old at signing, a minor (adult from {adult_age}): a "
            "parent, guardian or legal representative signs", where="consent.signed_by")
    if minor is False and signer is Signer.PARENT:
        raise EnrolmentError(
            f"the patient is {age} years old at signing, an adult: the patient signs, or a "
            "guardian or legal representative", where="consent.signed_by")
    if minor is False and assent is not None:
        raise EnrolmentError(f"assent is recorded for minors; the patient is {age}",
                             where="consent.assent")
    assent_age = _years(rules.assent_from_age_years, "assent_from_age_years") if rules else None
    if minor and assent_age is not None and age >= assent_age:
        if assent is None:
            raise EnrolmentError(f"the patient is {age}: from {assent_age} the child's assent "
                                 "must be recorded", where="consent.assent")
        if assent is False:
            raise EnrolmentError(f"the child ({age}) did not assent; consent is not valid "
                                 "without it", where="consent.assent")
    elif minor and assent_age is None:
        notes.append("the protocol sets no age for the child's assent")
    return ConsentRecord(
        trial_id=trial_id, patient_id=patient_id, version=version.strip(), signed_on=signed_on,
        signed_by=signer, assent=assent, age_years=age, recorded_by=recorded_by.strip(),
        recorded_at=recorded_at, notes=tuple(notes))
