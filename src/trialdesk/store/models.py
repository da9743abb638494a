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

from sqlalchemy import ForeignKey, Index, Integer, MetaData, String, Text, UniqueConstraint
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
