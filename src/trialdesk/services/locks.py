"""The lock of a patient's record (database lock): once an administrator locks it, every
change to that patient's facts, forms, calendar records, adverse events, actions and
responses is refused with one clear message. :func:`refuse_if_locked` is called where a
patient is loaded for a change (:func:`trialdesk.services.patients.load_patient`), so each
write path of the service layer passes through it.
"""

from __future__ import annotations

from trialdesk.errors import ConflictError
from trialdesk.services.context import Services
from trialdesk.services.roles import Permission
from trialdesk.store.queries import QueryStore

P = Permission

#: The permissions that change a patient's record (reading ones pass a lock).
CHANGES = frozenset({P.PATIENT_WRITE, P.SCREENING_RUN, P.ELIGIBILITY_CONFIRM,
                     P.ADMINISTRATION_RECORD, P.DOSE_SIGN, P.ADVERSE_EVENT_RECORD,
                     P.TOXICITY_CONFIRM, P.RESPONSE_RECORD, P.QUERY_ANSWER, P.QUERY_REVIEW})


class RecordLockedError(ConflictError):
    """A change to a locked patient's record."""

    code = "record_locked"


def query_store(ctx: Services) -> QueryStore:
    """The data-query part of the store, on the same database and clock."""
    return QueryStore(ctx.store.engine, clock=ctx.store.clock)


def refuse_if_locked(ctx: Services, study_number: str, permission: Permission | None = None
                     ) -> None:
    """Raise :class:`RecordLockedError` if the patient's record is locked and
    ``permission`` (None: any) changes it."""
    if permission is not None and permission not in CHANGES:
        return
    lock = ctx.catalogue.kept(("lock", study_number),
                              lambda: query_store(ctx).patient_lock(study_number))
    if lock is not None:
        raise RecordLockedError(
            f"patient {study_number}'s record is locked (by {lock.locked_by} on "
            f"{lock.locked_at[:10]}: {lock.reason}); it cannot be changed unless an "
            "administrator unlocks it", where="record")
