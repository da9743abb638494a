"""Registry search by a condition near a place as one list per place for any condition: each
study's ``search_concepts`` holds also each word of its conditions text joined to each of its
place cells (:func:`trialdesk.registry.search.condition_places`), so a box search with a
condition that is not a concept of the synonyms reads, for each cell of the box, the short
list of the studies with a word of that condition there (and checks the whole phrase),
instead of each cell's list. ``registry_concepts`` lists ``PLACE_WORDS`` once every stored
study has them.

Existing studies get them from their stored conditions text and cells; on SQLite
``registry_find`` is filled again once, rather than row by row through its triggers.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from trialdesk.registry.search import PLACE_WORDS, condition_places, study_concepts

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

FIND = ("search_title", "search_conditions", "search_interventions", "search_criteria",
        "search_places", "search_cells", "search_concepts")
_TRIGGERS = ("registry_find_insert", "registry_find_delete", "registry_find_update")


def _drop_find() -> None:
    for trigger in _TRIGGERS:
        op.execute(f"DROP TRIGGER IF EXISTS {trigger}")
    op.execute("DROP TABLE IF EXISTS registry_find")


def _find() -> None:
    """``registry_find`` as migration 0012 made it, filled from the studies."""
    names = ", ".join(FIND)
    new = ", ".join(f"new.{c}" for c in FIND)
    old = ", ".join(f"old.{c}" for c in FIND)
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


def fill(*, places: bool) -> None:
    """Every stored study's ``search_concepts``: its concept words alone and at its cells,
    and (``places``) its condition words at its cells."""
    bind = op.get_bind()
    sqlite = bind.dialect.name != "postgresql"
    if sqlite:
        _drop_find()
    bind.execute(sa.text("DELETE FROM registry_concepts WHERE token = :t"), {"t": PLACE_WORDS})
    update = sa.text("UPDATE registry_studies SET search_concepts = :words WHERE id = :id")
    select = sa.text("SELECT id, search_conditions, search_cells, search_concepts "
                     "FROM registry_studies WHERE id > :after ORDER BY id LIMIT 5000")
    after = -1
    while True:  # 5,000 studies at a time: the memory stays that of one batch
        rows = bind.execute(select, {"after": after}).all()
        if not rows:
            break
        after = rows[-1][0]
        batch: list[dict[str, object]] = []
        for study_id, conditions, cells, old in rows:
            found = (cells or "").split()
            words = " ".join(x for x in (study_concepts(conditions or "", found),
                                         condition_places(conditions or "", found) if places
                                         else "") if x)
            if words != old:
                batch.append({"id": study_id, "words": words})
        if batch:
            bind.execute(update, batch)
    if places:
        bind.execute(sa.text("INSERT INTO registry_concepts (token) VALUES (:t)"),
                     {"t": PLACE_WORDS})
    if sqlite:
        _find()


def upgrade() -> None:
    fill(places=True)


def downgrade() -> None:
    fill(places=False)
