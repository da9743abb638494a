"""The registry in the database: imported ClinicalTrials.gov studies (one row per NCT id,
the draft protocol document with every registry module it holds), their sites with geo
points, and full-text search over title, conditions, interventions, criteria and places:
an FTS5 table kept in sync by triggers on SQLite, a generated ``tsvector`` column with a
GIN index on PostgreSQL.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

MOMENT = sa.String(32)
FILTERS = ("id", "minimum_age_days", "maximum_age_days", "minimum_age", "maximum_age", "status",
           "phases", "sex")
SEARCH = ("search_title", "search_conditions", "search_interventions", "search_criteria",
          "search_places")


def upgrade() -> None:
    op.create_table(
        "registry_studies",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("nct_id", sa.String(16), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("status", sa.String(40), nullable=False),
        sa.Column("phases", sa.String(120), nullable=False),
        sa.Column("sex", sa.String(8), nullable=False),
        sa.Column("minimum_age", sa.String(32), nullable=True),
        sa.Column("maximum_age", sa.String(32), nullable=True),
        sa.Column("minimum_age_days", sa.Float(), nullable=True),
        sa.Column("maximum_age_days", sa.Float(), nullable=True),
        sa.Column("conditions", sa.Text(), nullable=False),
        sa.Column("mesh_terms", sa.Text(), nullable=False),
        sa.Column("last_update", sa.String(10), nullable=True),
        sa.Column("document", sa.Text(), nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("format", sa.String(8), nullable=False),
        sa.Column("source", sa.String(500), nullable=False),
        sa.Column("criteria_count", sa.Integer(), nullable=False),
        sa.Column("unreviewed", sa.Integer(), nullable=False),
        *(sa.Column(name, sa.Text(), nullable=False) for name in SEARCH),
        sa.Column("imported_at", MOMENT, nullable=False),
        sa.Column("imported_by", sa.String(64), nullable=False),
        sa.Column("updated_at", MOMENT, nullable=False),
        sa.Column("updated_by", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_registry_studies"),
        sa.UniqueConstraint("nct_id", name="uq_registry_studies_nct_id"),
    )
    op.create_index("ix_registry_studies_status", "registry_studies", ["status"])
    # The filter columns by id: search reads them for each full-text match from this small
    # index instead of the wide rows that hold the documents.
    op.create_index("ix_registry_studies_filters", "registry_studies", list(FILTERS))
    op.create_table(
        "registry_sites",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("study_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("facility", sa.Text(), nullable=True),
        sa.Column("city", sa.String(200), nullable=True),
        sa.Column("country", sa.String(100), nullable=True),
        sa.Column("lat", sa.Float(), nullable=True),
        sa.Column("lon", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_registry_sites"),
        sa.ForeignKeyConstraint(["study_id"], ["registry_studies.id"],
                                name="fk_registry_sites_study_id_registry_studies"),
    )
    op.create_index("ix_registry_sites_study_id", "registry_sites", ["study_id"])
    op.create_index("ix_registry_sites_lat", "registry_sites", ["lat"])
    op.create_index("ix_registry_sites_city", "registry_sites", ["city"])
    if op.get_bind().dialect.name == "postgresql":
        vector = " || ".join(
            f"setweight(to_tsvector('simple', {name}), '{w}')"
            for name, w in zip(SEARCH, "ABCDD", strict=True))
        op.execute(f"ALTER TABLE registry_studies ADD COLUMN search_vector tsvector "
                   f"GENERATED ALWAYS AS ({vector}) STORED")
        op.execute("CREATE INDEX registry_fts_vector ON registry_studies "
                   "USING GIN (search_vector)")
        return
    columns = ", ".join(SEARCH)
    new = ", ".join(f"new.{c}" for c in SEARCH)
    old = ", ".join(f"old.{c}" for c in SEARCH)
    op.execute(f"CREATE VIRTUAL TABLE registry_fts USING fts5({columns}, "
               "content='registry_studies', content_rowid='id', "
               "tokenize='unicode61 remove_diacritics 2')")
    op.execute(f"CREATE TRIGGER registry_fts_insert AFTER INSERT ON registry_studies BEGIN "
               f"INSERT INTO registry_fts(rowid, {columns}) VALUES (new.id, {new}); END")
    op.execute(f"CREATE TRIGGER registry_fts_delete AFTER DELETE ON registry_studies BEGIN "
               f"INSERT INTO registry_fts(registry_fts, rowid, {columns}) "
               f"VALUES ('delete', old.id, {old}); END")
    op.execute(f"CREATE TRIGGER registry_fts_update AFTER UPDATE ON registry_studies BEGIN "
               f"INSERT INTO registry_fts(registry_fts, rowid, {columns}) "
               f"VALUES ('delete', old.id, {old}); "
               f"INSERT INTO registry_fts(rowid, {columns}) VALUES (new.id, {new}); END")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        for trigger in ("registry_fts_insert", "registry_fts_delete", "registry_fts_update"):
            op.execute(f"DROP TRIGGER IF EXISTS {trigger}")
        op.execute("DROP TABLE IF EXISTS registry_fts")
    op.drop_table("registry_sites")
    op.drop_table("registry_studies")
