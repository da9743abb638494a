"""SQL persistence: SQLAlchemy 2 models and Alembic migrations (SQLite by default,
PostgreSQL by URL), versioned protocols, optimistic locking and the append-only,
hash-chained audit trail. ORM classes stay inside this package; callers get the frozen
records of :mod:`trialdesk.store.records`.
"""

from trialdesk.errors import AccessError, ConflictError, DatabaseError
from trialdesk.store.audit import ChainReport
from trialdesk.store.db import sqlite_url
from trialdesk.store.records import Page
from trialdesk.store.store import Store, moment, utcnow

__all__ = ["AccessError", "ChainReport", "ConflictError", "DatabaseError", "Page", "Store",
           "moment", "sqlite_url", "utcnow"]
