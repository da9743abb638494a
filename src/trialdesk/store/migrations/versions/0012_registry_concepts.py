"""Registry search by a condition with synonyms as one index word: each study holds, in
``search_concepts``, the word of every condition of
:data:`trialdesk.registry.search.SYNONYMS` its conditions name
(:func:`trialdesk.registry.search.study_concepts`), and ``registry_find`` (SQLite) indexes
that column too, so a box search looks the condition up as one word instead of an OR of
phrases ("sepsis", "septic shock", "shock, septic" ...). ``registry_concepts`` lists the
words every stored study was given: search uses a word only when it is listed there (the
phrases otherwise), and a change to the synonyms makes new words that a later migration
fills the same way.

Existing studies get their words from their stored conditions text.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from trialdesk.registry.search import concept_tokens, study_concepts

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

SEARCH = ("search_title", "search_conditions", "search_interventions", "search_criteria",
          "search_places")
FIND_0011 = (*SEARCH, "search_cells")
FIND = (*FIND_0011, "search_concepts")
_TRIGGERS = ("registry_find_insert", "registry_find_delete", "registry_find_update")


def _find(columns: tuple[str, ...]) -> None:
    """``registry_find`` over these columns, filled from the studies, kept by triggers."""
    names = ", ".join(columns)
    new = ", ".join(f"new.{c}" for c in columns)
    old = ", ".join(f"old.{c}" for c in columns)
    op.execute(f"CREATE VIRTUAL TABLE registry_find USING fts5({names}, "
               "content='registry_studies', content_rowid='id', "
               "tokenize='unicode61 remove_diacritics 2')")
    op.execute("INSERT INTO registry_find(registry_find) VALUES ('rebuild')")
    op.execute("CREATE TRIGGER registry_find_insert AFTER INSERT ON registry_studies BEGIN "
               f"INSERT INTO registry_find(rowid, {names}) VALUES (new.id, {new}); END")
    op.execute("CREATE TRIGGER registry_find_delete AFTER DELETE ON registry_studies BEGIN "
               f"INSERT INTO registry_find(registry_find, rowid, {names}) "
               f"VALUES ('delete', old.id, {old}); END")
    op.execute(f"CREATE TRIGGER registry_find_update AFTER UPDATE OF {names} "
               "ON registry_studies BEGIN "
               f"INSERT INTO registry_find(registry_find, rowid, {names}) "
               f"VALUES ('delete', old.id, {old}); "
               f"INSERT INTO registry_find(rowid, {names}) VALUES (new.id, {new}); END")


def _drop_find() -> None:
    for trigger in _TRIGGERS:
        op.execute(f"DROP TRIGGER IF EXISTS {trigger}")
    op.execute("DROP TABLE IF EXISTS registry_find")


def fill_concepts() -> None:
    """Every stored study's concept words from its conditions text, and the words listed."""
    bind = op.get_bind()
    update = sa.text("UPDATE registry_studies SET search_concepts = :words WHERE id = :id")
    batch: list[dict[str, object]] = []
    rows = bind.execute(sa.text("SELECT id, search_conditions FROM registry_studies "
                                "ORDER BY id")).all()
    for study_id, conditions in rows:
        words = study_concepts(conditions or "")
        if words:
            batch.append({"id": study_id, "words": words})
    for start in range(0, len(batch), 5000):
        bind.execute(update, batch[start:start + 5000])
    bind.execute(sa.text("DELETE FROM registry_concepts"))
    bind.execute(sa.text("INSERT INTO registry_concepts (token) VALUES (:token)"),
                 [{"token": t} for t in concept_tokens()])


def upgrade() -> None:
    sqlite = op.get_bind().dialect.name != "postgresql"
    op.add_column("registry_studies",
                  sa.Column("search_concepts", sa.Text(), nullable=False, server_default=""))
    op.create_table(
        "registry_concepts",
        sa.Column("token", sa.String(40), nullable=False),
        sa.PrimaryKeyConstraint("token", name="pk_registry_concepts"),
    )
    if sqlite:
        _drop_find()  # filled again below, with the words
    fill_concepts()
    if sqlite:
        _find(FIND)


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        _drop_find()
        _find(FIND_0011)
    op.drop_table("registry_concepts")
    op.drop_column("registry_studies", "search_concepts")
