"""Pharmacist sign-off per course: one signature on all the doses of a course, with the
doses as signed.

Revision ID: 0009
Revises: 0007
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

MOMENT = sa.String(32)


def upgrade() -> None:
    op.create_table(
        "course_signoffs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("signature_id", sa.Integer(), nullable=False),
        sa.Column("journey_id", sa.Integer(), nullable=False),
        sa.Column("course_number", sa.Integer(), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("recorded_at", MOMENT, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_course_signoffs"),
        sa.ForeignKeyConstraint(["signature_id"], ["signatures.id"],
                                name="fk_course_signoffs_signature_id_signatures"),
        sa.ForeignKeyConstraint(["journey_id"], ["journeys.id"],
                                name="fk_course_signoffs_journey_id_journeys"),
        sa.UniqueConstraint("signature_id", name="uq_course_signoffs_signature_id"),
    )
    op.create_index("ix_course_signoffs_journey_id", "course_signoffs", ["journey_id"])


def downgrade() -> None:
    op.drop_table("course_signoffs")
