"""What the store returns: frozen values, never ORM objects."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class UserRecord:
    id: int
    username: str
    full_name: str
    password_hash: str
    active: bool
    failed_logins: int
    locked_until: str | None
    version: int


@dataclass(frozen=True)
class MembershipRecord:
    trial_id: str
    site: str | None
    role: str


@dataclass(frozen=True)
class ProtocolVersionRecord:
    id: int
    trial_id: str
    number: int
    label: str
    digest: str
    document: dict[str, Any]
    source: str
    created_at: str
    created_by: str


@dataclass(frozen=True)
class TrialRecord:
    id: str
    latest: ProtocolVersionRecord
    version_count: int


@dataclass(frozen=True)
class PatientRecordRow:
    """A stored patient: study number, trial, site, the patient document and identifiers."""

    id: int
    study_number: str
    trial_id: str
    site: str
    record: dict[str, Any]
    identifiers: dict[str, Any]
    created_at: str
    updated_at: str
    updated_by: str
    version: int


@dataclass(frozen=True)
class ScreeningRow:
    id: int
    study_number: str
    trial_id: str
    protocol_version_id: int
    protocol_version_number: int
    protocol_version_label: str
    patient_version: int
    as_of: str
    verdict: str
    arm: str | None
    result: dict[str, Any]
    created_at: str
    created_by: str


@dataclass(frozen=True)
class SignatureRow:
    """An e-signature: printed name, date-time (UTC) and meaning, bound to a record digest."""

    id: int
    username: str
    full_name: str
    meaning: str
    record_type: str
    record_id: str
    record_digest: str
    signed_at: str

    @property
    def manifestation(self) -> str:
        """The signature as shown (21 CFR 11.50): name, date-time and meaning."""
        return f"{self.full_name} ({self.username}), {self.signed_at} — {self.meaning}"


@dataclass(frozen=True)
class EnrolmentRow:
    id: int
    study_number: str
    trial_id: str
    protocol_version_id: int
    protocol_version_number: int
    protocol_version_label: str
    screening_id: int
    signature: SignatureRow
    arm: str | None
    enrolled_at: str
    enrolled_by: str
    version: int


@dataclass(frozen=True)
class AuditRow:
    seq: int
    at: str
    username: str
    action: str
    record_type: str
    record_id: str
    changes: dict[str, Any]
    reason: str
    hash: str


@dataclass(frozen=True)
class Page:
    """One page of a list: the items, the total and where the page starts."""

    items: list[Any]
    total: int
    offset: int
    limit: int


@dataclass(frozen=True)
class TrialCounts:
    """Screened / eligible / enrolled, in total and per arm."""

    trial_id: str
    screened: int
    eligible: int
    enrolled: int
    by_arm: dict[str, dict[str, int]] = field(default_factory=dict)


# ---------------------------------------------------------------------------- the patient journey


@dataclass(frozen=True)
class ConsentRow:
    """A recorded consent (``document``: the core ConsentRecord as JSON)."""

    id: int
    study_number: str
    trial_id: str
    document: dict[str, Any]
    recorded_at: str
    recorded_by: str


@dataclass(frozen=True)
class JourneyRow:
    """Everything stored about one enrolled patient's calendar, as JSON documents of the core
    values (enrolment, consents, allocation, body measurements, event records, delays,
    applied toxicity actions) plus the calendar settings and the journey's version."""

    id: int
    study_number: str
    trial_id: str
    site: str
    enrolment_id: int
    document: dict[str, Any]
    arm: str | None
    arm_basis: str
    override_by: str | None
    override_reason: str | None
    start: str | None
    anchors: dict[str, str]
    consents: tuple[dict[str, Any], ...]
    allocation: dict[str, Any] | None
    body: tuple[dict[str, Any], ...]
    records: tuple[dict[str, Any], ...]
    delays: tuple[dict[str, Any], ...]
    actions: tuple[dict[str, Any], ...]
    enrolled_at: str
    updated_at: str
    updated_by: str
    version: int


@dataclass(frozen=True)
class ActionRow:
    """A toxicity action proposed by a rule for an adverse event, or for a cell product not
    released (``product``: its key, ``release_id``: the release decision; no adverse
    event); confirmed or not yet."""

    id: int
    adverse_event_id: int | None
    ordinal: int
    rule_id: str
    kind: str
    proposal: dict[str, Any]
    found_on: str | None
    status: str
    applied: dict[str, Any] | None
    signature: SignatureRow | None
    version: int
    product: str | None = None
    release_id: int | None = None


@dataclass(frozen=True)
class AdverseEventRow:
    id: int
    study_number: str
    trial_id: str
    site: str
    term: str
    grade: int
    onset: str
    course_number: int | None
    course_id: str | None
    document: dict[str, Any]
    lab: dict[str, Any] | None
    check: dict[str, Any]
    recorded_at: str
    recorded_by: str
    updated_at: str
    updated_by: str
    version: int
    actions: tuple[ActionRow, ...] = ()


@dataclass(frozen=True)
class ResponseRow:
    id: int
    study_number: str
    criteria: str
    kind: str
    assessed_on: str
    overall: str | None
    document: dict[str, Any]
    result: dict[str, Any]
    recorded_at: str
    recorded_by: str


@dataclass(frozen=True)
class FollowUpRow:
    id: int
    study_number: str
    kind: str
    occurred_on: str
    note: str
    recorded_at: str
    recorded_by: str


@dataclass(frozen=True)
class AllocationListInfo:
    """What may be shown of a sealed list: its digest, size and how many were allocated."""

    trial_id: str
    randomisation_id: str
    digest: str
    entries: int
    allocated: int
    created_at: str
    created_by: str


# ---------------------------------------------------------------------------- cell products


@dataclass(frozen=True)
class CellProductRow:
    """A stored cell product (``document``: the core Product as JSON) with its custody."""

    key: str
    trial_id: str
    spec_id: str
    stage: str
    parent: str | None
    recipient: str | None
    document: dict[str, Any]
    holder: str
    location: str | None
    storage: str | None
    created_at: str
    created_by: str
    updated_at: str
    updated_by: str
    version: int


@dataclass(frozen=True)
class ProductEntryRow:
    """One entry of a product's record (a test result, a release, a hand-over, a bedside
    verification, an infusion) as its JSON document."""

    id: int
    product: str | None
    document: dict[str, Any]
    recorded_at: str
    recorded_by: str
