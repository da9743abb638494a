"""The tables (SQLAlchemy 2 ORM). These classes never leave ``trialdesk.store``.

Conventions:

* Every editable record has an integer ``version`` (SQLAlchemy's ``version_id_col``): an
  UPDATE names the version it was based on, and a stale one changes no row.
* Moments are stored as ISO 8601 UTC text (``2026-11-21T12:00:00.000000Z``) so that the
  audit hashes are computed over exactly what is stored, on SQLite and PostgreSQL alike.
* JSON documents (a patient record, a protocol, a screening result) are stored as canonical
  JSON text (:func:`trialdesk.store.audit.canonical`).
* ``audit_log`` is append-only: the migration adds triggers that refuse UPDATE and DELETE
  (and TRUNCATE on PostgreSQL).
"""

from __future__ import annotations

from sqlalchemy import (
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

MOMENT = String(32)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    full_name: Mapped[str] = mapped_column(String(200))
    password_hash: Mapped[str] = mapped_column(String(200))
    active: Mapped[bool] = mapped_column(default=True)
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[str | None] = mapped_column(MOMENT, nullable=True)
    created_at: Mapped[str] = mapped_column(MOMENT)
    version: Mapped[int] = mapped_column(Integer)

    __mapper_args__ = {"version_id_col": version}  # noqa: RUF012


class Membership(Base):
    """A role in one trial, at one site or (site NULL) at every site of the trial."""

    __tablename__ = "memberships"
    __table_args__ = (UniqueConstraint("user_id", "trial_id", "site", "role"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    trial_id: Mapped[str] = mapped_column(ForeignKey("trials.id"))
    site: Mapped[str | None] = mapped_column(String(64), nullable=True)
    role: Mapped[str] = mapped_column(String(32))


class WebSession(Base):
    """A log-in session; the cookie holds a random token, the table its SHA-256."""

    __tablename__ = "web_sessions"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    created_at: Mapped[str] = mapped_column(MOMENT)
    expires_at: Mapped[str] = mapped_column(MOMENT)


class IdempotencyKey(Base):
    """A creating API request made with an ``Idempotency-Key``: its answer, kept so that a
    retry with the same key gets it again (``status`` is null while the request runs)."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (UniqueConstraint("user_id", "key_digest"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    key_digest: Mapped[str] = mapped_column(String(64))
    request_digest: Mapped[str] = mapped_column(String(64))
    status: Mapped[int | None] = mapped_column(Integer, nullable=True)
    content_type: Mapped[str | None] = mapped_column(String(100), nullable=True)
    body: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    created_at: Mapped[str] = mapped_column(MOMENT)


class Trial(Base):
    __tablename__ = "trials"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    created_at: Mapped[str] = mapped_column(MOMENT)
    latest_version: Mapped[int] = mapped_column(Integer)
    version: Mapped[int] = mapped_column(Integer)

    __mapper_args__ = {"version_id_col": version}  # noqa: RUF012


class ProtocolVersion(Base):
    """One version of a trial's protocol; an amendment is a new row, never an edit."""

    __tablename__ = "protocol_versions"
    __table_args__ = (UniqueConstraint("trial_id", "number"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    trial_id: Mapped[str] = mapped_column(ForeignKey("trials.id"))
    number: Mapped[int] = mapped_column(Integer)
    label: Mapped[str] = mapped_column(String(64))
    digest: Mapped[str] = mapped_column(String(64))
    document: Mapped[str] = mapped_column(Text)
    source: Mapped[str] = mapped_column(String(500))
    created_at: Mapped[str] = mapped_column(MOMENT)
    created_by: Mapped[str] = mapped_column(String(64))


class Patient(Base):
    __tablename__ = "patients"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study_number: Mapped[str] = mapped_column(String(64), unique=True)
    trial_id: Mapped[str] = mapped_column(ForeignKey("trials.id"), index=True)
    site: Mapped[str] = mapped_column(String(64))
    record: Mapped[str] = mapped_column(Text)
    identifiers: Mapped[str] = mapped_column(Text)
    created_at: Mapped[str] = mapped_column(MOMENT)
    updated_at: Mapped[str] = mapped_column(MOMENT)
    updated_by: Mapped[str] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(Integer)

    __mapper_args__ = {"version_id_col": version}  # noqa: RUF012


class Screening(Base):
    """A screening of a stored patient, naming the protocol version and record version used."""

    __tablename__ = "screenings"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    protocol_version_id: Mapped[int] = mapped_column(ForeignKey("protocol_versions.id"))
    patient_version: Mapped[int] = mapped_column(Integer)
    as_of: Mapped[str] = mapped_column(String(32))
    verdict: Mapped[str] = mapped_column(String(16))
    arm: Mapped[str | None] = mapped_column(String(64), nullable=True)
    result: Mapped[str] = mapped_column(Text)
    created_at: Mapped[str] = mapped_column(MOMENT)
    created_by: Mapped[str] = mapped_column(String(64))


class Signature(Base):
    """An electronic signature (21 CFR 11.50): who, when, meaning, bound to a record digest."""

    __tablename__ = "signatures"
    __table_args__ = (Index("ix_signatures_record", "record_type", "record_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    username: Mapped[str] = mapped_column(String(64))
    full_name: Mapped[str] = mapped_column(String(200))
    meaning: Mapped[str] = mapped_column(String(64))
    record_type: Mapped[str] = mapped_column(String(32))
    record_id: Mapped[str] = mapped_column(String(64))
    record_digest: Mapped[str] = mapped_column(String(64))
    signed_at: Mapped[str] = mapped_column(MOMENT)


class Enrolment(Base):
    """A patient enrolled in a trial under one protocol version (kept across amendments)."""

    __tablename__ = "enrolments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), unique=True)
    trial_id: Mapped[str] = mapped_column(ForeignKey("trials.id"), index=True)
    protocol_version_id: Mapped[int] = mapped_column(ForeignKey("protocol_versions.id"))
    screening_id: Mapped[int] = mapped_column(ForeignKey("screenings.id"))
    signature_id: Mapped[int] = mapped_column(ForeignKey("signatures.id"))
    arm: Mapped[str | None] = mapped_column(String(64), nullable=True)
    enrolled_at: Mapped[str] = mapped_column(MOMENT)
    enrolled_by: Mapped[str] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(Integer)

    __mapper_args__ = {"version_id_col": version}  # noqa: RUF012


class AuditEntry(Base):
    """One entry of the append-only audit trail; ``hash`` chains it to the previous one."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_record", "record_type", "record_id"),)

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    at: Mapped[str] = mapped_column(MOMENT)
    username: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(32))
    record_type: Mapped[str] = mapped_column(String(32))
    record_id: Mapped[str] = mapped_column(String(64))
    changes: Mapped[str] = mapped_column(Text)
    reason: Mapped[str] = mapped_column(Text)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditHead(Base):
    """The last sequence number and hash of the trail (one row), updated with every entry.

    Every write transaction starts by updating this row, which serialises writers on both
    backends (SQLite's write lock, PostgreSQL's row lock), so the chain never forks.
    """

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    seq: Mapped[int] = mapped_column(Integer)
    hash: Mapped[str] = mapped_column(String(64))
    writes: Mapped[int] = mapped_column(Integer)


# ---------------------------------------------------------------------------- the patient journey
# (migration 0002). Child records of a journey are written once and never edited: a
# correction is a new record with its reason. Each change to a journey bumps the journey's
# ``version``, so a change checked against a stale calendar is refused.


class Consent(Base):
    """A signed informed consent as recorded (``document``: the core ConsentRecord)."""

    __tablename__ = "consents"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    trial_id: Mapped[str] = mapped_column(ForeignKey("trials.id"))
    form_version: Mapped[str] = mapped_column(String(64))
    signed_on: Mapped[str] = mapped_column(String(10))
    signed_by: Mapped[str] = mapped_column(String(32))
    document: Mapped[str] = mapped_column(Text)
    recorded_at: Mapped[str] = mapped_column(MOMENT)
    recorded_by: Mapped[str] = mapped_column(String(64))


class Journey(Base):
    """An enrolled patient's calendar inputs: the core enrolment (frozen screening, arm,
    override, variants, optional agents), the start date and the clinical anchors."""

    __tablename__ = "journeys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    enrolment_id: Mapped[int] = mapped_column(ForeignKey("enrolments.id"), unique=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), unique=True)
    trial_id: Mapped[str] = mapped_column(ForeignKey("trials.id"), index=True)
    consent_id: Mapped[int] = mapped_column(ForeignKey("consents.id"))
    document: Mapped[str] = mapped_column(Text)
    arm_basis: Mapped[str] = mapped_column(String(16))
    override_by: Mapped[str | None] = mapped_column(String(200), nullable=True)
    override_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    start_date: Mapped[str | None] = mapped_column(String(10), nullable=True)
    anchors: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[str] = mapped_column(MOMENT)
    updated_by: Mapped[str] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(Integer)

    __mapper_args__ = {"version_id_col": version}  # noqa: RUF012


class BodyMeasurement(Base):
    __tablename__ = "body_measurements"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    journey_id: Mapped[int] = mapped_column(ForeignKey("journeys.id"), index=True)
    measured_on: Mapped[str] = mapped_column(String(10))
    weight_kg: Mapped[float | None] = mapped_column(Float, nullable=True)
    height_cm: Mapped[float | None] = mapped_column(Float, nullable=True)
    document: Mapped[str] = mapped_column(Text)
    recorded_at: Mapped[str] = mapped_column(MOMENT)
    recorded_by: Mapped[str] = mapped_column(String(64))


class EventRecord(Base):
    """What happened to one calendar event (an administration given, partly given, withheld…)."""

    __tablename__ = "event_records"
    __table_args__ = (UniqueConstraint("journey_id", "event_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    journey_id: Mapped[int] = mapped_column(ForeignKey("journeys.id"))
    event_id: Mapped[str] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(16))
    happened_at: Mapped[str] = mapped_column(String(32))
    amount: Mapped[float | None] = mapped_column(Float, nullable=True)
    unit: Mapped[str | None] = mapped_column(String(32), nullable=True)
    document: Mapped[str] = mapped_column(Text)
    recorded_at: Mapped[str] = mapped_column(MOMENT)
    recorded_by: Mapped[str] = mapped_column(String(64))


class CourseDelay(Base):
    __tablename__ = "course_delays"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    journey_id: Mapped[int] = mapped_column(ForeignKey("journeys.id"), index=True)
    course: Mapped[int] = mapped_column(Integer)
    days: Mapped[int] = mapped_column(Integer)
    rule_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    document: Mapped[str] = mapped_column(Text)
    recorded_at: Mapped[str] = mapped_column(MOMENT)
    recorded_by: Mapped[str] = mapped_column(String(64))


class AdverseEvent(Base):
    """An adverse event (``document``: the core AdverseEvent, CTCAE version kept), the lab it
    was graded from, and the safety check made when it was entered."""

    __tablename__ = "adverse_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    journey_id: Mapped[int] = mapped_column(ForeignKey("journeys.id"), index=True)
    term: Mapped[str] = mapped_column(String(200))
    grade: Mapped[int] = mapped_column(Integer)
    onset: Mapped[str] = mapped_column(String(10))
    course_number: Mapped[int | None] = mapped_column(Integer, nullable=True)
    course_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    document: Mapped[str] = mapped_column(Text)
    lab: Mapped[str | None] = mapped_column(Text, nullable=True)
    safety_check: Mapped[str] = mapped_column(Text)
    recorded_at: Mapped[str] = mapped_column(MOMENT)
    recorded_by: Mapped[str] = mapped_column(String(64))
    updated_at: Mapped[str] = mapped_column(MOMENT)
    updated_by: Mapped[str] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(Integer)

    __mapper_args__ = {"version_id_col": version}  # noqa: RUF012


class ToxicityAction(Base):
    """An action a protocol rule proposed for an adverse event or, for a cell product not
    released (a manufacturing failure), for that product with its release decision
    (exactly one of the two); once a clinician confirms it (e-signature) ``applied`` holds
    what it changed on the calendar."""

    __tablename__ = "toxicity_actions"
    __table_args__ = (
        CheckConstraint("(adverse_event_id IS NULL) <> (product_id IS NULL)", name="origin"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    adverse_event_id: Mapped[int | None] = mapped_column(ForeignKey("adverse_events.id"),
                                                         index=True, nullable=True)
    product_id: Mapped[int | None] = mapped_column(ForeignKey("cell_products.id"), index=True,
                                                   nullable=True)
    release_id: Mapped[int | None] = mapped_column(ForeignKey("cell_product_releases.id"),
                                                   nullable=True)
    journey_id: Mapped[int] = mapped_column(ForeignKey("journeys.id"), index=True)
    ordinal: Mapped[int] = mapped_column(Integer)
    rule_id: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(32))
    proposal: Mapped[str] = mapped_column(Text)
    found_on: Mapped[str | None] = mapped_column(String(10), nullable=True)
    status: Mapped[str] = mapped_column(String(16))
    applied: Mapped[str | None] = mapped_column(Text, nullable=True)
    signature_id: Mapped[int | None] = mapped_column(ForeignKey("signatures.id"), nullable=True)
    confirmed_at: Mapped[str | None] = mapped_column(MOMENT, nullable=True)
    confirmed_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    version: Mapped[int] = mapped_column(Integer)

    __mapper_args__ = {"version_id_col": version}  # noqa: RUF012


class ResponseAssessment(Base):
    """A response assessment (INRC 2017 time point, RECIST 1.1 baseline or time point) with
    the result and its reasoning as computed when it was entered."""

    __tablename__ = "response_assessments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    journey_id: Mapped[int] = mapped_column(ForeignKey("journeys.id"), index=True)
    criteria: Mapped[str] = mapped_column(String(16))
    kind: Mapped[str] = mapped_column(String(16))
    assessed_on: Mapped[str] = mapped_column(String(10))
    overall: Mapped[str | None] = mapped_column(String(32), nullable=True)
    document: Mapped[str] = mapped_column(Text)
    result: Mapped[str] = mapped_column(Text)
    recorded_at: Mapped[str] = mapped_column(MOMENT)
    recorded_by: Mapped[str] = mapped_column(String(64))


class FollowUp(Base):
    """A dated follow-up fact for the outcomes: last contact, death, second malignancy."""

    __tablename__ = "follow_ups"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    journey_id: Mapped[int] = mapped_column(ForeignKey("journeys.id"), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    occurred_on: Mapped[str] = mapped_column(String(10))
    note: Mapped[str] = mapped_column(Text)
    recorded_at: Mapped[str] = mapped_column(MOMENT)
    recorded_by: Mapped[str] = mapped_column(String(64))


class AllocationList(Base):
    """A sealed randomisation list: written once; its digest is recorded at generation and
    its entries never leave the store (only the allocation made for a patient does)."""

    __tablename__ = "allocation_lists"
    __table_args__ = (UniqueConstraint("trial_id", "randomisation_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    trial_id: Mapped[str] = mapped_column(ForeignKey("trials.id"))
    randomisation_id: Mapped[str] = mapped_column(String(64))
    digest: Mapped[str] = mapped_column(String(64))
    document: Mapped[str] = mapped_column(Text)
    entries: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[str] = mapped_column(MOMENT)
    created_by: Mapped[str] = mapped_column(String(64))


class Allocation(Base):
    """One allocation revealed from a list to one enrolled patient, in the order made."""

    __tablename__ = "allocations"
    __table_args__ = (UniqueConstraint("list_id", "stratum", "sequence"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    list_id: Mapped[int] = mapped_column(ForeignKey("allocation_lists.id"))
    journey_id: Mapped[int] = mapped_column(ForeignKey("journeys.id"), unique=True)
    stratum: Mapped[str] = mapped_column(String(200))
    sequence: Mapped[int] = mapped_column(Integer)
    arm: Mapped[str] = mapped_column(String(64))
    document: Mapped[str] = mapped_column(Text)
    allocated_at: Mapped[str] = mapped_column(MOMENT)


# ---------------------------------------------------------------------------- cell products


class DinSequence(Base):
    """The last ISBT 128 DIN sequence number given per facility and year (taken under the
    writers' lock, so two collections never get the same DIN)."""

    __tablename__ = "din_sequences"

    facility: Mapped[str] = mapped_column(String(5), primary_key=True)
    year: Mapped[int] = mapped_column(Integer, primary_key=True)
    last_seq: Mapped[int] = mapped_column(Integer)


class CellProduct(Base):
    """A cell product (``document``: the core Product as JSON) with the columns the lists
    filter on, its current holder and location, and a version for compare-and-swap."""

    __tablename__ = "cell_products"
    __table_args__ = (UniqueConstraint("din13", "flags", "product_code"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(40), unique=True)
    din13: Mapped[str] = mapped_column(String(13))
    flags: Mapped[str] = mapped_column(String(2))
    product_code: Mapped[str] = mapped_column(String(8))
    trial_id: Mapped[str] = mapped_column(ForeignKey("trials.id"), index=True)
    spec_id: Mapped[str] = mapped_column(String(64))
    stage: Mapped[str] = mapped_column(String(16))
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("cell_products.id"), nullable=True)
    donor: Mapped[str] = mapped_column(String(64))
    recipient: Mapped[str | None] = mapped_column(String(64), nullable=True)
    expires_at: Mapped[str | None] = mapped_column(String(32), nullable=True)
    document: Mapped[str] = mapped_column(Text)
    holder: Mapped[str] = mapped_column(String(64))
    location: Mapped[str | None] = mapped_column(String(200), nullable=True)
    storage: Mapped[str | None] = mapped_column(String(200), nullable=True)
    created_at: Mapped[str] = mapped_column(MOMENT)
    created_by: Mapped[str] = mapped_column(String(64))
    updated_at: Mapped[str] = mapped_column(MOMENT)
    updated_by: Mapped[str] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(Integer)

    __mapper_args__ = {"version_id_col": version}  # noqa: RUF012


class CellProductTest(Base):
    """One release-test result (the latest per test counts)."""

    __tablename__ = "cell_product_tests"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("cell_products.id"), index=True)
    test_id: Mapped[str] = mapped_column(String(64))
    document: Mapped[str] = mapped_column(Text)
    recorded_at: Mapped[str] = mapped_column(MOMENT)
    recorded_by: Mapped[str] = mapped_column(String(64))


class CellProductRelease(Base):
    """A signed release decision (normal or exceptional); its e-signatures are rows of
    ``signatures`` (record type ``product_release``, record id ``<product>#<release id>``)."""

    __tablename__ = "cell_product_releases"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("cell_products.id"), index=True)
    released: Mapped[bool] = mapped_column()
    exceptional: Mapped[bool] = mapped_column()
    document: Mapped[str] = mapped_column(Text)
    recorded_at: Mapped[str] = mapped_column(MOMENT)
    recorded_by: Mapped[str] = mapped_column(String(64))


class CellProductHandover(Base):
    """One hand-over, numbered per product (a second hand-over with the same number loses)."""

    __tablename__ = "cell_product_handovers"
    __table_args__ = (UniqueConstraint("product_id", "sequence"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("cell_products.id"))
    sequence: Mapped[int] = mapped_column(Integer)
    document: Mapped[str] = mapped_column(Text)
    recorded_at: Mapped[str] = mapped_column(MOMENT)
    recorded_by: Mapped[str] = mapped_column(String(64))


class CellProductVerification(Base):
    """A bedside verification as checked: what was entered, accepted or the refusals."""

    __tablename__ = "cell_product_verifications"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    product_id: Mapped[int | None] = mapped_column(ForeignKey("cell_products.id"), nullable=True,
                                                   index=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    event_id: Mapped[str] = mapped_column(String(128))
    accepted: Mapped[bool] = mapped_column()
    document: Mapped[str] = mapped_column(Text)
    recorded_at: Mapped[str] = mapped_column(MOMENT)
    recorded_by: Mapped[str] = mapped_column(String(64))


class CellProductInfusion(Base):
    """The infusion of a dose: once per product, after an accepted verification."""

    __tablename__ = "cell_product_infusions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("cell_products.id"), unique=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    check_id: Mapped[int] = mapped_column(ForeignKey("cell_product_verifications.id"))  # the verification
    event_id: Mapped[str] = mapped_column(String(128))
    document: Mapped[str] = mapped_column(Text)
    recorded_at: Mapped[str] = mapped_column(MOMENT)
    recorded_by: Mapped[str] = mapped_column(String(64))


# ---------------------------------------------------------------------------- biomarkers


class BiomarkerSample(Base):
    """A sample taken for a sampling event of the calendar (``document``: identifier,
    collection time, specimen and tube, processing, storage, who); corrected in place
    under its ``version``, each correction audited with its reason."""

    __tablename__ = "biomarker_samples"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sample_id: Mapped[str] = mapped_column(String(64), unique=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    trial_id: Mapped[str] = mapped_column(ForeignKey("trials.id"), index=True)
    event_id: Mapped[str] = mapped_column(String(128))
    collected_at: Mapped[str] = mapped_column(String(32))
    document: Mapped[str] = mapped_column(Text)
    recorded_at: Mapped[str] = mapped_column(MOMENT)
    recorded_by: Mapped[str] = mapped_column(String(64))
    updated_at: Mapped[str] = mapped_column(MOMENT)
    updated_by: Mapped[str] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(Integer)

    __mapper_args__ = {"version_id_col": version}  # noqa: RUF012


class BiomarkerResult(Base):
    """One revision of a sample's result for one fact: written once; a correction is the
    next revision with its reason, the latest revision counts."""

    __tablename__ = "biomarker_results"
    __table_args__ = (UniqueConstraint("sample_pk", "fact", "revision"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sample_pk: Mapped[int] = mapped_column(ForeignKey("biomarker_samples.id"))
    fact: Mapped[str] = mapped_column(String(64))
    revision: Mapped[int] = mapped_column(Integer)
    document: Mapped[str] = mapped_column(Text)
    recorded_at: Mapped[str] = mapped_column(MOMENT)
    recorded_by: Mapped[str] = mapped_column(String(64))


# ---------------------------------------------------------------------------- data queries and
# monitoring (migration 0007): a monitor's query on a field value of a patient's record and
# its steps, each form's review status, and the lock of a patient's record.


class DataQuery(Base):
    """A query on one field of one form of a patient's record (``status``: open, answered,
    closed; a re-opened query is open again)."""

    __tablename__ = "data_queries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    trial_id: Mapped[str] = mapped_column(ForeignKey("trials.id"), index=True)
    form: Mapped[str] = mapped_column(String(64))
    field: Mapped[str] = mapped_column(String(64))
    field_label: Mapped[str] = mapped_column(String(200))
    value_seen: Mapped[str] = mapped_column(Text)
    question: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16))
    opened_at: Mapped[str] = mapped_column(MOMENT)
    opened_by: Mapped[str] = mapped_column(String(64))
    updated_at: Mapped[str] = mapped_column(MOMENT)
    updated_by: Mapped[str] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(Integer)

    __mapper_args__ = {"version_id_col": version}  # noqa: RUF012


class DataQueryStep(Base):
    """One step of a query: opened, answered, corrected, closed or re-opened, with its text
    (and, for a correction, the value written)."""

    __tablename__ = "data_query_steps"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    query_id: Mapped[int] = mapped_column(ForeignKey("data_queries.id"), index=True)
    action: Mapped[str] = mapped_column(String(16))
    text: Mapped[str] = mapped_column(Text)
    value: Mapped[str | None] = mapped_column(Text, nullable=True)
    recorded_at: Mapped[str] = mapped_column(MOMENT)
    recorded_by: Mapped[str] = mapped_column(String(64))


class FormReview(Base):
    """A form's review status for one patient: ``complete`` (the site) or ``verified``
    (source-verified by a monitor), with the digest of the form's values it was given for;
    no row is incomplete."""

    __tablename__ = "form_reviews"
    __table_args__ = (UniqueConstraint("patient_id", "form"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"))
    form: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    values_digest: Mapped[str] = mapped_column(String(64))  # the form's values when set
    updated_at: Mapped[str] = mapped_column(MOMENT)
    updated_by: Mapped[str] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(Integer)

    __mapper_args__ = {"version_id_col": version}  # noqa: RUF012


class PatientLock(Base):
    """A patient's record locked by an administrator (database lock); an unlock ends it."""

    __tablename__ = "patient_locks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    locked_at: Mapped[str] = mapped_column(MOMENT)
    locked_by: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(Text)
    unlocked_at: Mapped[str | None] = mapped_column(MOMENT, nullable=True)
    unlocked_by: Mapped[str | None] = mapped_column(String(64), nullable=True)


class CourseSignoff(Base):
    """A pharmacist's one signature on all the doses of a course: the signature is bound to
    the digest of them all; ``content`` keeps the doses as signed (each with its working),
    so a dose changed afterwards can be named."""

    __tablename__ = "course_signoffs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    signature_id: Mapped[int] = mapped_column(ForeignKey("signatures.id"), unique=True)
    journey_id: Mapped[int] = mapped_column(ForeignKey("journeys.id"), index=True)
    course_number: Mapped[int] = mapped_column(Integer)
    content: Mapped[str] = mapped_column(Text)
    recorded_at: Mapped[str] = mapped_column(MOMENT)
class RegistryStudy(Base):
    """An imported ClinicalTrials.gov study: its draft protocol document (every registry
    module held, the criteria with their rule drafts and reviews) and the columns search
    reads. The ``search_*`` columns hold normalised text; the full-text index over them is
    made by migration 0008 (FTS5 on SQLite, a generated ``tsvector`` on PostgreSQL)."""

    __tablename__ = "registry_studies"
    __table_args__ = (Index("ix_registry_studies_filters", "id", "minimum_age_days",
                            "maximum_age_days", "minimum_age", "maximum_age", "status", "phases",
                            "sex"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    nct_id: Mapped[str] = mapped_column(String(16), unique=True)
    title: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(40), index=True)
    phases: Mapped[str] = mapped_column(String(120))  # "|PHASE1|PHASE2|"
    sex: Mapped[str] = mapped_column(String(8))
    minimum_age: Mapped[str | None] = mapped_column(String(32), nullable=True)
    maximum_age: Mapped[str | None] = mapped_column(String(32), nullable=True)
    minimum_age_days: Mapped[float | None] = mapped_column(Float, nullable=True)
    maximum_age_days: Mapped[float | None] = mapped_column(Float, nullable=True)
    conditions: Mapped[str] = mapped_column(Text)  # as the record names them, " | "
    mesh_terms: Mapped[str] = mapped_column(Text)
    last_update: Mapped[str | None] = mapped_column(String(10), nullable=True)
    document: Mapped[str] = mapped_column(Text)
    digest: Mapped[str] = mapped_column(String(64))
    format: Mapped[str] = mapped_column(String(8))
    source: Mapped[str] = mapped_column(String(500))
    criteria_count: Mapped[int] = mapped_column(Integer)
    unreviewed: Mapped[int] = mapped_column(Integer)
    search_title: Mapped[str] = mapped_column(Text)
    search_conditions: Mapped[str] = mapped_column(Text)
    search_interventions: Mapped[str] = mapped_column(Text)
    search_criteria: Mapped[str] = mapped_column(Text)
    search_places: Mapped[str] = mapped_column(Text)
    # The grid cells of the sites' geo points (migration 0011): a box search's first cut.
    search_cells: Mapped[str] = mapped_column(Text, server_default="")
    # The index words of the conditions of SYNONYMS it holds (migration 0012): a box
    # search's condition as one word, not an OR of phrases.
    search_concepts: Mapped[str] = mapped_column(Text, server_default="")
    imported_at: Mapped[str] = mapped_column(MOMENT)
    imported_by: Mapped[str] = mapped_column(String(64))
    updated_at: Mapped[str] = mapped_column(MOMENT)
    updated_by: Mapped[str] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(Integer)

    __mapper_args__ = {"version_id_col": version}  # noqa: RUF012


class RegistryConcept(Base):
    """An index word of :func:`trialdesk.registry.search.concept_token` that every stored
    study holds exactly when its conditions name the concept (migration 0012 filled them
    all): search uses the word only then, else the phrases."""

    __tablename__ = "registry_concepts"

    token: Mapped[str] = mapped_column(String(40), primary_key=True)


class RegistrySite(Base):
    """One location of an imported study, with its geo point when the record gives one."""

    __tablename__ = "registry_sites"
    # A study's points from the index alone: a box search reads no site row it rejects.
    __table_args__ = (Index("ix_registry_sites_study_point", "study_id", "lat", "lon"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("registry_studies.id"))
    position: Mapped[int] = mapped_column(Integer)
    facility: Mapped[str | None] = mapped_column(Text, nullable=True)
    city: Mapped[str | None] = mapped_column(String(200), nullable=True, index=True)
    country: Mapped[str | None] = mapped_column(String(100), nullable=True)
    lat: Mapped[float | None] = mapped_column(Float, nullable=True, index=True)
    lon: Mapped[float | None] = mapped_column(Float, nullable=True)
