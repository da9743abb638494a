"""Protocol actions proposed for a cell product that was not released (a manufacturing
failure): a toxicity action belongs to an adverse event or to a product with its release
decision, exactly one of the two. Existing actions keep their adverse event.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("toxicity_actions") as batch:
        batch.alter_column("adverse_event_id", existing_type=sa.Integer(), nullable=True)
        batch.add_column(sa.Column("product_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("release_id", sa.Integer(), nullable=True))
        batch.create_foreign_key("fk_toxicity_actions_product_id_cell_products",
                                 "cell_products", ["product_id"], ["id"])
        batch.create_foreign_key("fk_toxicity_actions_release_id_cell_product_releases",
                                 "cell_product_releases", ["release_id"], ["id"])
        batch.create_index("ix_toxicity_actions_product_id", ["product_id"])
        batch.create_check_constraint(op.f("ck_toxicity_actions_origin"),
                                      "(adverse_event_id IS NULL) <> (product_id IS NULL)")


def downgrade() -> None:
    # A signed decision on a product's action has nowhere to go in the older schema: refuse
    # rather than lose it.
    bind = op.get_bind()
    left = bind.execute(sa.text(
        "SELECT count(*) FROM toxicity_actions WHERE product_id IS NOT NULL")).scalar()
    if left:
        raise RuntimeError(f"{left} product action(s) would be lost; downgrade refused")
    with op.batch_alter_table("toxicity_actions") as batch:
        batch.drop_constraint(op.f("ck_toxicity_actions_origin"), type_="check")
        batch.drop_index("ix_toxicity_actions_product_id")
        batch.drop_constraint("fk_toxicity_actions_release_id_cell_product_releases",
                              type_="foreignkey")
        batch.drop_constraint("fk_toxicity_actions_product_id_cell_products",
                              type_="foreignkey")
        batch.drop_column("release_id")
        batch.drop_column("product_id")
        batch.alter_column("adverse_event_id", existing_type=sa.Integer(), nullable=False)
