"""What every part of the store shares: the clock, stored moments, the audit diff and the
read and write transactions (a write takes the audit head first and appends the audit
entries of its changes, all in one transaction)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Self

from sqlalchemy import Engine, insert, select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

import trialdesk.store.models as m
from trialdesk.errors import ConflictError, NotFoundError
from trialdesk.store.audit import canonical, entry_hash
from trialdesk.store.db import make_engine, upgrade
from trialdesk.store.records import SignatureRow

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(UTC)


def moment(at: datetime) -> str:
    """A moment as stored: ISO 8601 UTC with microseconds and ``Z``.

    >>> moment(datetime(2026, 11, 21, 12, 0, tzinfo=UTC))
    '2026-11-21T12:00:00.000000Z'
    """
    if at.tzinfo is None:
        raise ValueError("a stored moment must be timezone-aware")
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_moment(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


def diff(old: Any, new: Any, path: str = "$") -> dict[str, dict[str, Any]]:
    """Old → new for every leaf that changed, by JSON path.

    >>> diff({"a": 1, "b": [1, 2]}, {"a": 1, "b": [1, 3], "c": "x"})
    {'$.b[1]': {'old': 2, 'new': 3}, '$.c': {'old': None, 'new': 'x'}}
    """
    if isinstance(old, dict) and isinstance(new, dict):
        out: dict[str, dict[str, Any]] = {}
        for key in [*old, *(k for k in new if k not in old)]:
            out.update(diff(old.get(key), new.get(key), f"{path}.{key}"))
        return out
    if isinstance(old, list) and isinstance(new, list):
        out = {}
        for i in range(max(len(old), len(new))):
            out.update(diff(old[i] if i < len(old) else None, new[i] if i < len(new) else None,
                            f"{path}[{i}]"))
        return out
    return {} if old == new else {path: {"old": old, "new": new}}


@dataclass
class Tx:
    """One write transaction: the session, who is writing, the moment, the audit head."""

    session: Session
    actor: str
    at: str
    head: m.AuditHead
    entries: list[int] = field(default_factory=list)

    def _link(self, action: str, record_type: str, record_id: str,
              changes: Mapping[str, Any], reason: str) -> dict[str, Any]:
        """The next entry of the chain (the head moves on to it)."""
        if not reason.strip():
            raise ValueError("every audited change needs a reason")
        content = {
            "seq": self.head.seq + 1, "at": self.at, "username": self.actor, "action": action,
            "record_type": record_type, "record_id": record_id, "changes": canonical(changes),
            "reason": reason,
        }
        new_hash = entry_hash(self.head.hash, content)
        row = {"prev_hash": self.head.hash, "hash": new_hash, **content}
        self.head.seq += 1
        self.head.hash = new_hash
        self.entries.append(self.head.seq)
        return row

    def audit(self, action: str, record_type: str, record_id: str,
              changes: Mapping[str, Any], reason: str) -> None:
        self.session.add(m.AuditEntry(**self._link(action, record_type, record_id, changes,
                                                   reason)))

    def audit_many(self, entries: Iterable[tuple[str, str, str, Mapping[str, Any], str]]
                   ) -> None:
        """The entries (action, record type, record id, changes, reason) of many changes,
        chained in order as :meth:`audit` would chain them one by one, written in one
        multi-row insert."""
        rows = [self._link(*e) for e in entries]
        if rows:
            self.session.execute(insert(m.Base.metadata.tables["audit_log"]), rows)


#: The write counter as one request read it (see :func:`counter_read_once`); None outside.
_SEEN: ContextVar[dict[int, int] | None] = ContextVar("trialdesk_writes_seen", default=None)


@contextmanager
def counter_read_once() -> Iterator[None]:
    """Within this block (one web request), :meth:`StoreBase.writes` reads the database's
    write counter once and answers from it afterwards, until a write of this block raises
    it: what the request reads is keyed by the counter as it stood when it began."""
    token = _SEEN.set({})
    try:
        yield
    finally:
        _SEEN.reset(token)


class StoreBase:
    """The engine, the clock and the two kinds of transaction every store method uses."""

    def __init__(self, engine: Engine, *, clock: Clock = utcnow) -> None:
        self.engine = engine
        self.clock = clock

    @classmethod
    def open(cls, url: str, *, migrate: bool = True, clock: Clock = utcnow,
             synchronous: str = "NORMAL") -> Self:
        """Open the database at ``url``, bringing its schema up to date unless told not to
        (``synchronous``: SQLite's durability, see :func:`trialdesk.store.db.make_engine`)."""
        engine = make_engine(url, synchronous=synchronous)
        if migrate:
            upgrade(engine)
        return cls(engine, clock=clock)

    @property
    def backend(self) -> str:
        return self.engine.dialect.name

    def close(self) -> None:
        self.engine.dispose()

    def now(self) -> datetime:
        return self.clock()

    def writes(self) -> int:
        """How many write transactions the database has committed (the audit head's
        counter, raised by every write): a value read before a read keys what that read
        found, for as long as the counter stays the same."""
        seen = _SEEN.get()
        if seen is not None and id(self) in seen:
            return seen[id(self)]
        head = m.AuditHead.__table__.c
        with self.engine.connect() as c:
            writes = int(c.scalar(select(head.writes).where(head.id == 1)) or 0)
        if seen is not None:
            seen[id(self)] = writes
        return writes

    # ------------------------------------------------------------------ transactions

    @contextmanager
    def _read(self) -> Iterator[Session]:
        with Session(self.engine) as session:
            yield session

    @contextmanager
    def _write(self, actor: str) -> Iterator[Tx]:
        try:
            with Session(self.engine, expire_on_commit=False) as session:
                try:
                    with session.begin():
                        # Take the writers' lock first (see AuditHead).
                        session.execute(update(m.AuditHead).where(m.AuditHead.id == 1)
                                        .values(writes=m.AuditHead.writes + 1))
                        head = session.get(m.AuditHead, 1, populate_existing=True)
                        if head is None:
                            raise NotFoundError("the audit trail has no head record",
                                                where="audit_head")
                        yield Tx(session, actor, moment(self.now()), head)
                except StaleDataError:
                    raise ConflictError("the record was changed by someone else while "
                                        "saving; reload it and apply your change again"
                                        ) from None
        finally:
            seen = _SEEN.get()
            if seen is not None:  # this write raised the counter: read it again
                seen.pop(id(self), None)

    def _add_signature(self, tx: Tx, user_id: int, meaning: str, record_type: str,
                       record_id: str, record_digest: str, reason: str, audit_id: str
                       ) -> m.Signature:
        u = tx.session.get(m.User, user_id)
        if u is None:
            raise NotFoundError(f"no user {user_id}")
        sig = m.Signature(user_id=u.id, username=u.username, full_name=u.full_name,
                          meaning=meaning, record_type=record_type, record_id=record_id,
                          record_digest=record_digest, signed_at=tx.at)
        tx.session.add(sig)
        tx.session.flush()
        tx.audit("sign", record_type, audit_id,
                 {"record_id": {"old": None, "new": record_id},
                  "signature": {"old": None, "new": f"{u.full_name} — {meaning}"},
                  "record_digest": {"old": None, "new": record_digest}}, reason)
        return sig


def signature_row(s: m.Signature) -> SignatureRow:
    return SignatureRow(s.id, s.username, s.full_name, s.meaning, s.record_type, s.record_id,
                        s.record_digest, s.signed_at)
