"""Registry search by place without reading every full-text match: each study's sites give
it grid cells (``search_cells``, see :func:`trialdesk.store.registry.site_cells`); on
SQLite a second FTS5 index, ``registry_find``, holds the search texts and the cells, so a
search with words or a condition and a bounding box intersects them inside the index. The
rank still comes from ``registry_fts`` (unchanged), now only for the studies found. The
sites get an index on (study, lat, lon) in place of the one on the study alone, and the
rank index is rewritten only when a search text changes (not on a review).

Existing studies get their cells from their stored sites.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from trialdesk.store.registry import site_cells

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

SEARCH = ("search_title", "search_conditions", "search_interventions", "search_criteria",
          "search_places")
FIND = (*SEARCH, "search_cells")


def _fts_triggers(table: str, columns: tuple[str, ...], watched: tuple[str, ...]) -> None:
    names = ", ".join(columns)
    new = ", ".join(f"new.{c}" for c in columns)
    old = ", ".join(f"old.{c}" for c in columns)
    op.execute(f"CREATE TRIGGER {table}_insert AFTER INSERT ON registry_studies BEGIN "
               f"INSERT INTO {table}(rowid, {names}) VALUES (new.id, {new}); END")
    op.execute(f"CREATE TRIGGER {table}_delete AFTER DELETE ON registry_studies BEGIN "
               f"INSERT INTO {table}({table}, rowid, {names}) VALUES ('delete', old.id, {old}); "
               "END")
    op.execute(f"CREATE TRIGGER {table}_update AFTER UPDATE OF {', '.join(watched)} "
               f"ON registry_studies BEGIN "
               f"INSERT INTO {table}({table}, rowid, {names}) VALUES ('delete', old.id, {old}); "
               f"INSERT INTO {table}(rowid, {names}) VALUES (new.id, {new}); END")


def _fill_cells() -> None:
    bind = op.get_bind()
    points: dict[int, list[tuple[float, float]]] = {}
    rows = bind.execute(sa.text(
        "SELECT study_id, lat, lon FROM registry_sites WHERE lat IS NOT NULL "
        "AND lon IS NOT NULL ORDER BY study_id, position"))
    for study_id, lat, lon in rows:
        points.setdefault(study_id, []).append((lat, lon))
    update = sa.text("UPDATE registry_studies SET search_cells = :cells WHERE id = :id")
    batch = [{"id": k, "cells": site_cells(v)} for k, v in points.items()]
    for start in range(0, len(batch), 5000):
        bind.execute(update, batch[start:start + 5000])


def upgrade() -> None:
    sqlite = op.get_bind().dialect.name != "postgresql"
    op.add_column("registry_studies",
                  sa.Column("search_cells", sa.Text(), nullable=False, server_default=""))
    op.create_index("ix_registry_sites_study_point", "registry_sites",
                    ["study_id", "lat", "lon"])
    op.drop_index("ix_registry_sites_study_id", table_name="registry_sites")
    if sqlite:
        # The rank index is rewritten only when a search text changes: filling the cells
        # below, and a review, leave it alone.
        op.execute("DROP TRIGGER registry_fts_update")
        op.execute("CREATE TRIGGER registry_fts_update AFTER UPDATE OF "
                   f"{', '.join(SEARCH)} ON registry_studies BEGIN "
                   f"INSERT INTO registry_fts(registry_fts, rowid, {', '.join(SEARCH)}) "
                   f"VALUES ('delete', old.id, {', '.join(f'old.{c}' for c in SEARCH)}); "
                   f"INSERT INTO registry_fts(rowid, {', '.join(SEARCH)}) "
                   f"VALUES (new.id, {', '.join(f'new.{c}' for c in SEARCH)}); END")
    _fill_cells()
    if not sqlite:
        return
    op.execute(f"CREATE VIRTUAL TABLE registry_find USING fts5({', '.join(FIND)}, "
               "content='registry_studies', content_rowid='id', "
               "tokenize='unicode61 remove_diacritics 2')")
    op.execute("INSERT INTO registry_find(registry_find) VALUES ('rebuild')")
    _fts_triggers("registry_find", FIND, FIND)


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        for trigger in ("registry_find_insert", "registry_find_delete", "registry_find_update",
                        "registry_fts_update"):
            op.execute(f"DROP TRIGGER IF EXISTS {trigger}")
        op.execute("DROP TABLE IF EXISTS registry_find")
        op.execute("CREATE TRIGGER registry_fts_update AFTER UPDATE ON registry_studies BEGIN "
                   f"INSERT INTO registry_fts(registry_fts, rowid, {', '.join(SEARCH)}) "
                   f"VALUES ('delete', old.id, {', '.join(f'old.{c}' for c in SEARCH)}); "
                   f"INSERT INTO registry_fts(rowid, {', '.join(SEARCH)}) "
                   f"VALUES (new.id, {', '.join(f'new.{c}' for c in SEARCH)}); END")
    op.create_index("ix_registry_sites_study_id", "registry_sites", ["study_id"])
    op.drop_index("ix_registry_sites_study_point", table_name="registry_sites")
    op.drop_column("registry_studies", "search_cells")
