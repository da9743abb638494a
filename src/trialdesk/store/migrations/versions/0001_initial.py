"""Initial schema: users, trials and protocol versions, patients, screenings, signatures,
enrolments, and the append-only audit trail.

Revision ID: 0001
Revises:
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

MOMENT = sa.String(32)
GENESIS = "0" * 64


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("username", sa.String(64), nullable=False),
        sa.Column("full_name", sa.String(200), nullable=False),
        sa.Column("password_hash", sa.String(200), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("failed_logins", sa.Integer(), nullable=False),
        sa.Column("locked_until", MOMENT, nullable=True),
        sa.Column("created_at", MOMENT, nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_users"),
        sa.UniqueConstraint("username", name="uq_users_username"),
    )
    op.create_table(
        "trials",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("created_at", MOMENT, nullable=False),
        sa.Column("latest_version", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_trials"),
    )
    op.create_table(
        "memberships",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("trial_id", sa.String(64), nullable=False),
        sa.Column("site", sa.String(64), nullable=True),
        sa.Column("role", sa.String(32), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_memberships"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name="fk_memberships_user_id_users"),
        sa.ForeignKeyConstraint(["trial_id"], ["trials.id"], name="fk_memberships_trial_id_trials"),
        sa.UniqueConstraint("user_id", "trial_id", "site", "role", name="uq_memberships_user_id"),
    )
    op.create_index("ix_memberships_user_id", "memberships", ["user_id"])
    op.create_table(
        "web_sessions",
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("created_at", MOMENT, nullable=False),
        sa.Column("expires_at", MOMENT, nullable=False),
        sa.PrimaryKeyConstraint("token_hash", name="pk_web_sessions"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name="fk_web_sessions_user_id_users"),
    )
    op.create_index("ix_web_sessions_user_id", "web_sessions", ["user_id"])
    op.create_table(
        "protocol_versions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("trial_id", sa.String(64), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("label", sa.String(64), nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("document", sa.Text(), nullable=False),
        sa.Column("source", sa.String(500), nullable=False),
        sa.Column("created_at", MOMENT, nullable=False),
        sa.Column("created_by", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_protocol_versions"),
        sa.ForeignKeyConstraint(["trial_id"], ["trials.id"],
                                name="fk_protocol_versions_trial_id_trials"),
        sa.UniqueConstraint("trial_id", "number", name="uq_protocol_versions_trial_id"),
    )
    op.create_table(
        "patients",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("study_number", sa.String(64), nullable=False),
        sa.Column("trial_id", sa.String(64), nullable=False),
        sa.Column("site", sa.String(64), nullable=False),
        sa.Column("record", sa.Text(), nullable=False),
        sa.Column("identifiers", sa.Text(), nullable=False),
        sa.Column("created_at", MOMENT, nullable=False),
        sa.Column("updated_at", MOMENT, nullable=False),
        sa.Column("updated_by", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_patients"),
        sa.ForeignKeyConstraint(["trial_id"], ["trials.id"], name="fk_patients_trial_id_trials"),
        sa.UniqueConstraint("study_number", name="uq_patients_study_number"),
    )
    op.create_index("ix_patients_trial_id", "patients", ["trial_id"])
    op.create_table(
        "screenings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("patient_id", sa.Integer(), nullable=False),
        sa.Column("protocol_version_id", sa.Integer(), nullable=False),
        sa.Column("patient_version", sa.Integer(), nullable=False),
        sa.Column("as_of", sa.String(32), nullable=False),
        sa.Column("verdict", sa.String(16), nullable=False),
        sa.Column("arm", sa.String(64), nullable=True),
        sa.Column("result", sa.Text(), nullable=False),
        sa.Column("created_at", MOMENT, nullable=False),
        sa.Column("created_by", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_screenings"),
        sa.ForeignKeyConstraint(["patient_id"], ["patients.id"],
                                name="fk_screenings_patient_id_patients"),
        sa.ForeignKeyConstraint(["protocol_version_id"], ["protocol_versions.id"],
                                name="fk_screenings_protocol_version_id_protocol_versions"),
    )
    op.create_index("ix_screenings_patient_id", "screenings", ["patient_id"])
    op.create_table(
        "signatures",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("username", sa.String(64), nullable=False),
        sa.Column("full_name", sa.String(200), nullable=False),
        sa.Column("meaning", sa.String(64), nullable=False),
        sa.Column("record_type", sa.String(32), nullable=False),
        sa.Column("record_id", sa.String(64), nullable=False),
        sa.Column("record_digest", sa.String(64), nullable=False),
        sa.Column("signed_at", MOMENT, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_signatures"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name="fk_signatures_user_id_users"),
    )
    op.create_index("ix_signatures_record", "signatures", ["record_type", "record_id"])
    op.create_table(
        "enrolments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("patient_id", sa.Integer(), nullable=False),
        sa.Column("trial_id", sa.String(64), nullable=False),
        sa.Column("protocol_version_id", sa.Integer(), nullable=False),
        sa.Column("screening_id", sa.Integer(), nullable=False),
        sa.Column("signature_id", sa.Integer(), nullable=False),
        sa.Column("arm", sa.String(64), nullable=True),
        sa.Column("enrolled_at", MOMENT, nullable=False),
        sa.Column("enrolled_by", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_enrolments"),
        sa.ForeignKeyConstraint(["patient_id"], ["patients.id"],
                                name="fk_enrolments_patient_id_patients"),
        sa.ForeignKeyConstraint(["trial_id"], ["trials.id"], name="fk_enrolments_trial_id_trials"),
        sa.ForeignKeyConstraint(["protocol_version_id"], ["protocol_versions.id"],
                                name="fk_enrolments_protocol_version_id_protocol_versions"),
        sa.ForeignKeyConstraint(["screening_id"], ["screenings.id"],
                                name="fk_enrolments_screening_id_screenings"),
        sa.ForeignKeyConstraint(["signature_id"], ["signatures.id"],
                                name="fk_enrolments_signature_id_signatures"),
        sa.UniqueConstraint("patient_id", name="uq_enrolments_patient_id"),
    )
    op.create_index("ix_enrolments_trial_id", "enrolments", ["trial_id"])
    op.create_table(
        "audit_log",
        sa.Column("seq", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("at", MOMENT, nullable=False),
        sa.Column("username", sa.String(64), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("record_type", sa.String(32), nullable=False),
        sa.Column("record_id", sa.String(64), nullable=False),
        sa.Column("changes", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("seq", name="pk_audit_log"),
    )
    op.create_index("ix_audit_log_record", "audit_log", ["record_type", "record_id"])
    op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.Column("writes", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_audit_head"),
    )
    op.execute(sa.text(f"INSERT INTO audit_head (id, seq, hash, writes) VALUES (1, 0, '{GENESIS}', 0)"))
    _append_only()


def _append_only() -> None:
    """Refuse UPDATE and DELETE (and TRUNCATE) on the audit trail, in the database itself."""
    if op.get_bind().dialect.name == "postgresql":
        op.execute(sa.text(
            "CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ "
            "BEGIN RAISE EXCEPTION 'audit_log is append-only'; END $$"))
        op.execute(sa.text(
            "CREATE TRIGGER audit_log_no_change BEFORE UPDATE OR DELETE ON audit_log "
            "FOR EACH ROW EXECUTE FUNCTION audit_log_append_only()"))
        op.execute(sa.text(
            "CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log "
            "FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only()"))
    else:
        for event in ("UPDATE", "DELETE"):
            op.execute(sa.text(
                f"CREATE TRIGGER audit_log_no_{event.lower()} BEFORE {event} ON audit_log "
                "BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END"))


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(sa.text("DROP TRIGGER audit_log_no_truncate ON audit_log"))
        op.execute(sa.text("DROP TRIGGER audit_log_no_change ON audit_log"))
        op.execute(sa.text("DROP FUNCTION audit_log_append_only()"))
    for table in ("audit_head", "audit_log", "enrolments", "signatures", "screenings",
                  "patients", "protocol_versions", "web_sessions", "memberships", "trials",
                  "users"):
        op.drop_table(table)
