"""The patient journey: consents, calendar inputs (start date, anchors, body measurements),
event records, course delays, adverse events with their proposed and confirmed toxicity
actions, response assessments, follow-up, sealed randomisation lists and allocations.

Allocation lists and allocations are append-only in the database itself (a sealed list is
never replaced, an allocation never changed), like the audit trail.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

MOMENT = sa.String(32)
APPEND_ONLY = ("allocation_lists", "allocations")


def _id() -> sa.Column:
    return sa.Column("id", sa.Integer(), nullable=False)


def _journey_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(["journey_id"], ["journeys.id"],
                                   name=f"fk_{table}_journey_id_journeys")


def _recorded() -> list[sa.Column]:
    return [sa.Column("recorded_at", MOMENT, nullable=False),
            sa.Column("recorded_by", sa.String(64), nullable=False)]


def upgrade() -> None:
    op.create_table(
        "consents", _id(),
        sa.Column("patient_id", sa.Integer(), nullable=False),
        sa.Column("trial_id", sa.String(64), nullable=False),
        sa.Column("form_version", sa.String(64), nullable=False),
        sa.Column("signed_on", sa.String(10), nullable=False),
        sa.Column("signed_by", sa.String(32), nullable=False),
        sa.Column("document", sa.Text(), nullable=False),
        *_recorded(),
        sa.PrimaryKeyConstraint("id", name="pk_consents"),
        sa.ForeignKeyConstraint(["patient_id"], ["patients.id"],
                                name="fk_consents_patient_id_patients"),
        sa.ForeignKeyConstraint(["trial_id"], ["trials.id"], name="fk_consents_trial_id_trials"),
    )
    op.create_index("ix_consents_patient_id", "consents", ["patient_id"])
    op.create_table(
        "journeys", _id(),
        sa.Column("enrolment_id", sa.Integer(), nullable=False),
        sa.Column("patient_id", sa.Integer(), nullable=False),
        sa.Column("trial_id", sa.String(64), nullable=False),
        sa.Column("consent_id", sa.Integer(), nullable=False),
        sa.Column("document", sa.Text(), nullable=False),
        sa.Column("arm_basis", sa.String(16), nullable=False),
        sa.Column("override_by", sa.String(200), nullable=True),
        sa.Column("override_reason", sa.Text(), nullable=True),
        sa.Column("start_date", sa.String(10), nullable=True),
        sa.Column("anchors", sa.Text(), nullable=False),
        sa.Column("updated_at", MOMENT, nullable=False),
        sa.Column("updated_by", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_journeys"),
        sa.ForeignKeyConstraint(["enrolment_id"], ["enrolments.id"],
                                name="fk_journeys_enrolment_id_enrolments"),
        sa.ForeignKeyConstraint(["patient_id"], ["patients.id"],
                                name="fk_journeys_patient_id_patients"),
        sa.ForeignKeyConstraint(["trial_id"], ["trials.id"], name="fk_journeys_trial_id_trials"),
        sa.ForeignKeyConstraint(["consent_id"], ["consents.id"],
                                name="fk_journeys_consent_id_consents"),
        sa.UniqueConstraint("enrolment_id", name="uq_journeys_enrolment_id"),
        sa.UniqueConstraint("patient_id", name="uq_journeys_patient_id"),
    )
    op.create_index("ix_journeys_trial_id", "journeys", ["trial_id"])
    op.create_table(
        "body_measurements", _id(),
        sa.Column("journey_id", sa.Integer(), nullable=False),
        sa.Column("measured_on", sa.String(10), nullable=False),
        sa.Column("weight_kg", sa.Float(), nullable=True),
        sa.Column("height_cm", sa.Float(), nullable=True),
        sa.Column("document", sa.Text(), nullable=False),
        *_recorded(),
        sa.PrimaryKeyConstraint("id", name="pk_body_measurements"),
        _journey_fk("body_measurements"),
    )
    op.create_index("ix_body_measurements_journey_id", "body_measurements", ["journey_id"])
    op.create_table(
        "event_records", _id(),
        sa.Column("journey_id", sa.Integer(), nullable=False),
        sa.Column("event_id", sa.String(128), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("happened_at", sa.String(32), nullable=False),
        sa.Column("amount", sa.Float(), nullable=True),
        sa.Column("unit", sa.String(32), nullable=True),
        sa.Column("document", sa.Text(), nullable=False),
        *_recorded(),
        sa.PrimaryKeyConstraint("id", name="pk_event_records"),
        _journey_fk("event_records"),
        sa.UniqueConstraint("journey_id", "event_id", name="uq_event_records_journey_id"),
    )
    op.create_table(
        "course_delays", _id(),
        sa.Column("journey_id", sa.Integer(), nullable=False),
        sa.Column("course", sa.Integer(), nullable=False),
        sa.Column("days", sa.Integer(), nullable=False),
        sa.Column("rule_id", sa.String(64), nullable=True),
        sa.Column("document", sa.Text(), nullable=False),
        *_recorded(),
        sa.PrimaryKeyConstraint("id", name="pk_course_delays"),
        _journey_fk("course_delays"),
    )
    op.create_index("ix_course_delays_journey_id", "course_delays", ["journey_id"])
    op.create_table(
        "adverse_events", _id(),
        sa.Column("journey_id", sa.Integer(), nullable=False),
        sa.Column("term", sa.String(200), nullable=False),
        sa.Column("grade", sa.Integer(), nullable=False),
        sa.Column("onset", sa.String(10), nullable=False),
        sa.Column("course_number", sa.Integer(), nullable=True),
        sa.Column("course_id", sa.String(64), nullable=True),
        sa.Column("document", sa.Text(), nullable=False),
        sa.Column("lab", sa.Text(), nullable=True),
        sa.Column("safety_check", sa.Text(), nullable=False),
        *_recorded(),
        sa.Column("updated_at", MOMENT, nullable=False),
        sa.Column("updated_by", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_adverse_events"),
        _journey_fk("adverse_events"),
    )
    op.create_index("ix_adverse_events_journey_id", "adverse_events", ["journey_id"])
    op.create_table(
        "toxicity_actions", _id(),
        sa.Column("adverse_event_id", sa.Integer(), nullable=False),
        sa.Column("journey_id", sa.Integer(), nullable=False),
        sa.Column("ordinal", sa.Integer(), nullable=False),
        sa.Column("rule_id", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("proposal", sa.Text(), nullable=False),
        sa.Column("found_on", sa.String(10), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("applied", sa.Text(), nullable=True),
        sa.Column("signature_id", sa.Integer(), nullable=True),
        sa.Column("confirmed_at", MOMENT, nullable=True),
        sa.Column("confirmed_by", sa.String(64), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_toxicity_actions"),
        sa.ForeignKeyConstraint(["adverse_event_id"], ["adverse_events.id"],
                                name="fk_toxicity_actions_adverse_event_id_adverse_events"),
        _journey_fk("toxicity_actions"),
        sa.ForeignKeyConstraint(["signature_id"], ["signatures.id"],
                                name="fk_toxicity_actions_signature_id_signatures"),
    )
    op.create_index("ix_toxicity_actions_adverse_event_id", "toxicity_actions",
                    ["adverse_event_id"])
    op.create_index("ix_toxicity_actions_journey_id", "toxicity_actions", ["journey_id"])
    op.create_table(
        "response_assessments", _id(),
        sa.Column("journey_id", sa.Integer(), nullable=False),
        sa.Column("criteria", sa.String(16), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("assessed_on", sa.String(10), nullable=False),
        sa.Column("overall", sa.String(32), nullable=True),
        sa.Column("document", sa.Text(), nullable=False),
        sa.Column("result", sa.Text(), nullable=False),
        *_recorded(),
        sa.PrimaryKeyConstraint("id", name="pk_response_assessments"),
        _journey_fk("response_assessments"),
    )
    op.create_index("ix_response_assessments_journey_id", "response_assessments",
                    ["journey_id"])
    op.create_table(
        "follow_ups", _id(),
        sa.Column("journey_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("occurred_on", sa.String(10), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        *_recorded(),
        sa.PrimaryKeyConstraint("id", name="pk_follow_ups"),
        _journey_fk("follow_ups"),
    )
    op.create_index("ix_follow_ups_journey_id", "follow_ups", ["journey_id"])
    op.create_table(
        "allocation_lists", _id(),
        sa.Column("trial_id", sa.String(64), nullable=False),
        sa.Column("randomisation_id", sa.String(64), nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("document", sa.Text(), nullable=False),
        sa.Column("entries", sa.Integer(), nullable=False),
        sa.Column("created_at", MOMENT, nullable=False),
        sa.Column("created_by", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_allocation_lists"),
        sa.ForeignKeyConstraint(["trial_id"], ["trials.id"],
                                name="fk_allocation_lists_trial_id_trials"),
        sa.UniqueConstraint("trial_id", "randomisation_id", name="uq_allocation_lists_trial_id"),
    )
    op.create_table(
        "allocations", _id(),
        sa.Column("list_id", sa.Integer(), nullable=False),
        sa.Column("journey_id", sa.Integer(), nullable=False),
        sa.Column("stratum", sa.String(200), nullable=False),
        sa.Column("sequence", sa.Integer(), nullable=False),
        sa.Column("arm", sa.String(64), nullable=False),
        sa.Column("document", sa.Text(), nullable=False),
        sa.Column("allocated_at", MOMENT, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_allocations"),
        sa.ForeignKeyConstraint(["list_id"], ["allocation_lists.id"],
                                name="fk_allocations_list_id_allocation_lists"),
        _journey_fk("allocations"),
        sa.UniqueConstraint("list_id", "stratum", "sequence", name="uq_allocations_list_id"),
        sa.UniqueConstraint("journey_id", name="uq_allocations_journey_id"),
    )
    _append_only()


def _append_only() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(sa.text(
            "CREATE FUNCTION sealed_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ "
            "BEGIN RAISE EXCEPTION '% is append-only', TG_TABLE_NAME; END $$"))
        for table in APPEND_ONLY:
            op.execute(sa.text(
                f"CREATE TRIGGER {table}_no_change BEFORE UPDATE OR DELETE ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION sealed_append_only()"))
            op.execute(sa.text(
                f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
                "FOR EACH STATEMENT EXECUTE FUNCTION sealed_append_only()"))
    else:
        for table in APPEND_ONLY:
            for event in ("UPDATE", "DELETE"):
                op.execute(sa.text(
                    f"CREATE TRIGGER {table}_no_{event.lower()} BEFORE {event} ON {table} "
                    f"BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END"))


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in APPEND_ONLY:
            op.execute(sa.text(f"DROP TRIGGER {table}_no_truncate ON {table}"))
            op.execute(sa.text(f"DROP TRIGGER {table}_no_change ON {table}"))
        op.execute(sa.text("DROP FUNCTION sealed_append_only()"))
    for table in ("allocations", "allocation_lists", "follow_ups", "response_assessments",
                  "toxicity_actions", "adverse_events", "course_delays", "event_records",
                  "body_measurements", "journeys", "consents"):
        op.drop_table(table)
