"""Biomarker samples and their results: a sample taken for a sampling event of the
calendar, and the results that later attach to it (a correction is a new revision of the
result, with its reason; the one it replaces stays).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

MOMENT = sa.String(32)


def upgrade() -> None:
    op.create_table(
        "biomarker_samples",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("sample_id", sa.String(64), nullable=False),
        sa.Column("patient_id", sa.Integer(), nullable=False),
        sa.Column("trial_id", sa.String(64), nullable=False),
        sa.Column("event_id", sa.String(128), nullable=False),
        sa.Column("collected_at", sa.String(32), nullable=False),
        sa.Column("document", sa.Text(), nullable=False),
        sa.Column("recorded_at", MOMENT, nullable=False),
        sa.Column("recorded_by", sa.String(64), nullable=False),
        sa.Column("updated_at", MOMENT, nullable=False),
        sa.Column("updated_by", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_biomarker_samples"),
        sa.ForeignKeyConstraint(["patient_id"], ["patients.id"],
                                name="fk_biomarker_samples_patient_id_patients"),
        sa.ForeignKeyConstraint(["trial_id"], ["trials.id"],
                                name="fk_biomarker_samples_trial_id_trials"),
        sa.UniqueConstraint("sample_id", name="uq_biomarker_samples_sample_id"),
    )
    op.create_index("ix_biomarker_samples_patient_id", "biomarker_samples", ["patient_id"])
    op.create_index("ix_biomarker_samples_trial_id", "biomarker_samples", ["trial_id"])
    op.create_table(
        "biomarker_results",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("sample_pk", sa.Integer(), nullable=False),
        sa.Column("fact", sa.String(64), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("document", sa.Text(), nullable=False),
        sa.Column("recorded_at", MOMENT, nullable=False),
        sa.Column("recorded_by", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_biomarker_results"),
        sa.ForeignKeyConstraint(["sample_pk"], ["biomarker_samples.id"],
                                name="fk_biomarker_results_sample_pk_biomarker_samples"),
        sa.UniqueConstraint("sample_pk", "fact", "revision",
                            name="uq_biomarker_results_sample_pk"),
    )


def downgrade() -> None:
    for table in ("biomarker_results", "biomarker_samples"):
        op.drop_table(table)
