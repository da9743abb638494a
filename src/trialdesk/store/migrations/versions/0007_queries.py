"""Data queries and monitoring: a monitor's queries on field values and their steps, each
form's review status (complete, source-verified) and the lock of a patient's record.

Revision ID: 0007
Revises: 0005
Create Date: 2026-12-04
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0005"
branch_labels = None
depends_on = None

MOMENT = sa.String(32)


def _id() -> sa.Column:
    return sa.Column("id", sa.Integer(), nullable=False)


def _patient(table: str) -> list[Any]:
    return [sa.Column("patient_id", sa.Integer(), nullable=False),
            sa.ForeignKeyConstraint(["patient_id"], ["patients.id"],
                                    name=f"fk_{table}_patient_id_patients")]


def upgrade() -> None:
    op.create_table(
        "data_queries", _id(), *_patient("data_queries"),
        sa.Column("trial_id", sa.String(64), nullable=False),
        sa.Column("form", sa.String(64), nullable=False),
        sa.Column("field", sa.String(64), nullable=False),
        sa.Column("field_label", sa.String(200), nullable=False),
        sa.Column("value_seen", sa.Text(), nullable=False),
        sa.Column("question", sa.Text(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("opened_at", MOMENT, nullable=False),
        sa.Column("opened_by", sa.String(64), nullable=False),
        sa.Column("updated_at", MOMENT, nullable=False),
        sa.Column("updated_by", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_data_queries"),
        sa.ForeignKeyConstraint(["trial_id"], ["trials.id"],
                                name="fk_data_queries_trial_id_trials"),
    )
    op.create_index("ix_data_queries_patient_id", "data_queries", ["patient_id"])
    op.create_index("ix_data_queries_trial_id", "data_queries", ["trial_id"])
    op.create_table(
        "data_query_steps", _id(),
        sa.Column("query_id", sa.Integer(), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("value", sa.Text(), nullable=True),
        sa.Column("recorded_at", MOMENT, nullable=False),
        sa.Column("recorded_by", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_data_query_steps"),
        sa.ForeignKeyConstraint(["query_id"], ["data_queries.id"],
                                name="fk_data_query_steps_query_id_data_queries"),
    )
    op.create_index("ix_data_query_steps_query_id", "data_query_steps", ["query_id"])
    op.create_table(
        "form_reviews", _id(), *_patient("form_reviews"),
        sa.Column("form", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("values_digest", sa.String(64), nullable=False),
        sa.Column("updated_at", MOMENT, nullable=False),
        sa.Column("updated_by", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_form_reviews"),
        sa.UniqueConstraint("patient_id", "form", name="uq_form_reviews_patient_id"),
    )
    op.create_table(
        "patient_locks", _id(), *_patient("patient_locks"),
        sa.Column("locked_at", MOMENT, nullable=False),
        sa.Column("locked_by", sa.String(64), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("unlocked_at", MOMENT, nullable=True),
        sa.Column("unlocked_by", sa.String(64), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_patient_locks"),
    )
    op.create_index("ix_patient_locks_patient_id", "patient_locks", ["patient_id"])


def downgrade() -> None:
    for table in ("patient_locks", "form_reviews", "data_query_steps", "data_queries"):
        op.drop_table(table)
