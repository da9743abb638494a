"""One exception tree for trialdesk.

Every error trialdesk raises on purpose is a :class:`TrialdeskError` with a stable
``code``. The CLI maps them to exit code 1 with one clear line; the web layer maps
them to HTTP in one place. Domain code never raises HTTP errors.
"""

from __future__ import annotations


class TrialdeskError(Exception):
    """Base of every deliberate trialdesk error.

    ``where`` names the file, record or field, ``reason`` says what is wrong.

    >>> str(TrialdeskError("must be positive", where="patient.json: $.weight"))
    'patient.json: $.weight: must be positive'
    """

    code = "trialdesk_error"

    def __init__(self, reason: str, *, where: str | None = None) -> None:
        self.reason = reason
        self.where = where
        super().__init__(f"{where}: {reason}" if where else reason)


class ProtocolError(TrialdeskError):
    """A protocol file is malformed or inconsistent."""

    code = "protocol_invalid"


class CriteriaError(TrialdeskError):
    """An eligibility expression cannot be parsed or type-checked."""

    code = "criteria_invalid"


class FactError(TrialdeskError):
    """A patient record or fact value is malformed or impossible."""

    code = "facts_invalid"


class UnitError(FactError):
    """A unit is unknown or not convertible to the expected one."""

    code = "unit_invalid"


class NotFoundError(TrialdeskError):
    """A trial, patient or record does not exist."""

    code = "not_found"


class ClinicalError(TrialdeskError):
    """A clinical calculator was given values it cannot use."""

    code = "clinical_invalid"


class ScheduleError(TrialdeskError):
    """A calendar cannot be laid out or changed as asked."""

    code = "schedule_invalid"


class EnrolmentError(TrialdeskError):
    """Consent, enrolment or randomisation refused."""

    code = "enrolment_refused"


class SafetyError(TrialdeskError):
    """An adverse event or toxicity action is invalid."""

    code = "safety_invalid"


class ResponseError(TrialdeskError):
    """A response assessment is invalid."""

    code = "response_invalid"


class OutcomeError(TrialdeskError):
    """Outcome data cannot be derived or imported."""

    code = "outcome_invalid"


class ConflictError(TrialdeskError):
    """A save based on a stale version, or a record that already exists."""

    code = "conflict"


class AccessError(TrialdeskError):
    """Log-in failed, the session expired, or the role does not allow the action."""

    code = "access_denied"

    def __init__(self, reason: str, *, where: str | None = None, status: int = 403) -> None:
        super().__init__(reason, where=where)
        self.status = status


class DatabaseError(TrialdeskError):
    """The database cannot be opened, migrated or read."""

    code = "database_error"


class SettingsError(TrialdeskError):
    """A setting is missing or unsafe."""

    code = "settings_invalid"


class ScreeningError(TrialdeskError):
    """Population screening cannot read its input, write its output or run its engine."""

    code = "screening_failed"
class RegistryError(TrialdeskError):
    """A registry record cannot be imported, or a registry search is malformed."""

    code = "registry_invalid"


class ReviewError(TrialdeskError):
    """A review of an imported criterion is refused (unknown criterion, unsigned, bad rule)."""

    code = "review_refused"
