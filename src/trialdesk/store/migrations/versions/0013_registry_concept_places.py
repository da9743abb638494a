"""Registry search by a condition with synonyms near a place as one list per place: each
study's concept words (migration 0012) come also joined to each of its place cells
(migration 0011), so a box search reads, for each cell of the box, the short list of the
studies with that condition there, instead of the condition's list and each cell's list
(:func:`trialdesk.registry.search.study_concepts`).

Existing studies get the joined words from their stored conditions text and cells (the full-
text index follows by its triggers); the concepts are listed again once all have them.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from trialdesk.registry.search import concept_tokens, study_concepts

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def fill(*, places: bool) -> None:
    """Every stored study's concept words (joined to its cells when ``places``): the rows
    whose words change are written, and the concepts listed."""
    bind = op.get_bind()
    bind.execute(sa.text("DELETE FROM registry_concepts"))
    update = sa.text("UPDATE registry_studies SET search_concepts = :words WHERE id = :id")
    rows = bind.execute(sa.text("SELECT id, search_conditions, search_cells, search_concepts "
                                "FROM registry_studies WHERE search_concepts != '' "
                                "ORDER BY id")).all()
    batch: list[dict[str, object]] = []
    for study_id, conditions, cells, old in rows:
        words = study_concepts(conditions or "", (cells or "").split() if places else ())
        if words != old:
            batch.append({"id": study_id, "words": words})
    for start in range(0, len(batch), 5000):
        bind.execute(update, batch[start:start + 5000])
    bind.execute(sa.text("INSERT INTO registry_concepts (token) VALUES (:token)"),
                 [{"token": t} for t in concept_tokens()])


def upgrade() -> None:
    fill(places=True)


def downgrade() -> None:
    fill(places=False)
