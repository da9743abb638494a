"""Cell products: DIN sequences, products (a tree), release-test results, signed release
decisions, hand-overs, bedside verifications and infusions.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

MOMENT = sa.String(32)


def _id() -> sa.Column:
    return sa.Column("id", sa.Integer(), nullable=False)


def _product_fk(table: str, column: str = "product_id") -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint([column], ["cell_products.id"],
                                   name=f"fk_{table}_{column}_cell_products")


def _patient_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(["patient_id"], ["patients.id"],
                                   name=f"fk_{table}_patient_id_patients")


def _recorded() -> list[sa.Column]:
    return [sa.Column("document", sa.Text(), nullable=False),
            sa.Column("recorded_at", MOMENT, nullable=False),
            sa.Column("recorded_by", sa.String(64), nullable=False)]


def upgrade() -> None:
    op.create_table(
        "din_sequences",
        sa.Column("facility", sa.String(5), nullable=False),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("last_seq", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("facility", "year", name="pk_din_sequences"),
    )
    op.create_table(
        "cell_products", _id(),
        sa.Column("key", sa.String(40), nullable=False),
        sa.Column("din13", sa.String(13), nullable=False),
        sa.Column("flags", sa.String(2), nullable=False),
        sa.Column("product_code", sa.String(8), nullable=False),
        sa.Column("trial_id", sa.String(64), nullable=False),
        sa.Column("spec_id", sa.String(64), nullable=False),
        sa.Column("stage", sa.String(16), nullable=False),
        sa.Column("parent_id", sa.Integer(), nullable=True),
        sa.Column("donor", sa.String(64), nullable=False),
        sa.Column("recipient", sa.String(64), nullable=True),
        sa.Column("expires_at", sa.String(32), nullable=True),
        sa.Column("document", sa.Text(), nullable=False),
        sa.Column("holder", sa.String(64), nullable=False),
        sa.Column("location", sa.String(200), nullable=True),
        sa.Column("storage", sa.String(200), nullable=True),
        sa.Column("created_at", MOMENT, nullable=False),
        sa.Column("created_by", sa.String(64), nullable=False),
        sa.Column("updated_at", MOMENT, nullable=False),
        sa.Column("updated_by", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_cell_products"),
        sa.ForeignKeyConstraint(["trial_id"], ["trials.id"],
                                name="fk_cell_products_trial_id_trials"),
        _product_fk("cell_products", "parent_id"),
        sa.UniqueConstraint("key", name="uq_cell_products_key"),
        sa.UniqueConstraint("din13", "flags", "product_code", name="uq_cell_products_din13"),
    )
    op.create_index("ix_cell_products_trial_id", "cell_products", ["trial_id"])
    op.create_table(
        "cell_product_tests", _id(),
        sa.Column("product_id", sa.Integer(), nullable=False),
        sa.Column("test_id", sa.String(64), nullable=False),
        *_recorded(),
        sa.PrimaryKeyConstraint("id", name="pk_cell_product_tests"),
        _product_fk("cell_product_tests"),
    )
    op.create_index("ix_cell_product_tests_product_id", "cell_product_tests", ["product_id"])
    op.create_table(
        "cell_product_releases", _id(),
        sa.Column("product_id", sa.Integer(), nullable=False),
        sa.Column("released", sa.Boolean(), nullable=False),
        sa.Column("exceptional", sa.Boolean(), nullable=False),
        *_recorded(),
        sa.PrimaryKeyConstraint("id", name="pk_cell_product_releases"),
        _product_fk("cell_product_releases"),
    )
    op.create_index("ix_cell_product_releases_product_id", "cell_product_releases",
                    ["product_id"])
    op.create_table(
        "cell_product_handovers", _id(),
        sa.Column("product_id", sa.Integer(), nullable=False),
        sa.Column("sequence", sa.Integer(), nullable=False),
        *_recorded(),
        sa.PrimaryKeyConstraint("id", name="pk_cell_product_handovers"),
        _product_fk("cell_product_handovers"),
        sa.UniqueConstraint("product_id", "sequence", name="uq_cell_product_handovers_product_id"),
    )
    op.create_table(
        "cell_product_verifications", _id(),
        sa.Column("product_id", sa.Integer(), nullable=True),
        sa.Column("patient_id", sa.Integer(), nullable=False),
        sa.Column("event_id", sa.String(128), nullable=False),
        sa.Column("accepted", sa.Boolean(), nullable=False),
        *_recorded(),
        sa.PrimaryKeyConstraint("id", name="pk_cell_product_verifications"),
        _product_fk("cell_product_verifications"),
        _patient_fk("cell_product_verifications"),
    )
    op.create_index("ix_cell_product_verifications_product_id", "cell_product_verifications",
                    ["product_id"])
    op.create_index("ix_cell_product_verifications_patient_id", "cell_product_verifications",
                    ["patient_id"])
    op.create_table(
        "cell_product_infusions", _id(),
        sa.Column("product_id", sa.Integer(), nullable=False),
        sa.Column("patient_id", sa.Integer(), nullable=False),
        sa.Column("check_id", sa.Integer(), nullable=False),
        sa.Column("event_id", sa.String(128), nullable=False),
        *_recorded(),
        sa.PrimaryKeyConstraint("id", name="pk_cell_product_infusions"),
        _product_fk("cell_product_infusions"),
        _patient_fk("cell_product_infusions"),
        sa.ForeignKeyConstraint(["check_id"], ["cell_product_verifications.id"],
                                name="fk_cell_product_infusions_check_id_cell_product_verifications"),
        sa.UniqueConstraint("product_id", name="uq_cell_product_infusions_product_id"),
    )
    op.create_index("ix_cell_product_infusions_patient_id", "cell_product_infusions",
                    ["patient_id"])


def downgrade() -> None:
    for table in ("cell_product_infusions", "cell_product_verifications",
                  "cell_product_handovers", "cell_product_releases", "cell_product_tests",
                  "cell_products", "din_sequences"):
        op.drop_table(table)
