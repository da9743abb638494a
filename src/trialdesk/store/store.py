"""The store: every read and write of trialdesk's database, behind plain values.

Every change to clinical data runs in one transaction together with its audit entries:
either both are stored or neither is. Each write transaction first updates the audit head
row, which serialises writers, then appends one audit entry per changed record with who,
when (UTC), what, old → new and the reason.

Editable records carry a ``version``; a save names the version it was based on and a
stale one is refused with :class:`ConflictError` (optimistic locking).

>>> store = Store.open("sqlite:///:memory:")
>>> v = store.import_protocol({"id": "T1", "version": "1.0"}, source="t1.yaml",
...                           actor="system", reason="initial import")
>>> (v.trial_id, v.number, v.label)
('T1', 1, '1.0')
>>> store.verify_audit().ok
True
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

import trialdesk.store.models as m
from trialdesk.errors import ConflictError, NotFoundError
from trialdesk.store.audit import AuditLink, ChainReport, canonical, digest, verify_chain
from trialdesk.store.base import (
    Clock,
    StoreBase,
    Tx,
    diff,
    moment,
    parse_moment,
    signature_row,
    utcnow,
)
from trialdesk.store.biomarkers import BiomarkerStore
from trialdesk.store.cellproduct import CellProductStore
from trialdesk.store.clinical import Allocate
from trialdesk.store.records import (
    AuditRow,
    EnrolmentRow,
    MembershipRecord,
    Page,
    PatientRecordRow,
    ProtocolVersionRecord,
    ScreeningRow,
    SignatureRow,
    TrialCounts,
    TrialRecord,
    UserRecord,
)

__all__ = ["Clock", "Store", "StoreBase", "diff", "moment", "parse_moment", "utcnow"]


def _user(u: m.User) -> UserRecord:
    return UserRecord(u.id, u.username, u.full_name, u.password_hash, u.active, u.failed_logins,
                      u.locked_until, u.version)


def _version(v: m.ProtocolVersion) -> ProtocolVersionRecord:
    return ProtocolVersionRecord(v.id, v.trial_id, v.number, v.label, v.digest,
                                 json.loads(v.document), v.source, v.created_at, v.created_by)


def _patient(p: m.Patient) -> PatientRecordRow:
    return PatientRecordRow(p.id, p.study_number, p.trial_id, p.site, json.loads(p.record),
                            json.loads(p.identifiers), p.created_at, p.updated_at, p.updated_by,
                            p.version)


class Store(CellProductStore, BiomarkerStore):
    """trialdesk's database. Open with :meth:`open`; every method is one transaction."""

    def __init__(self, engine: Engine, *, clock: Clock = utcnow) -> None:
        super().__init__(engine, clock=clock)
        #: protocol versions read so far, by id and digest (see :meth:`protocol_version`)
        self._versions: dict[tuple[int, str], ProtocolVersionRecord] = {}

    # ------------------------------------------------------------------ users

    def add_user(self, username: str, full_name: str, password_hash: str, *, actor: str,
                 reason: str) -> UserRecord:
        with self._write(actor) as tx:
            if tx.session.scalar(select(m.User).where(m.User.username == username)):
                raise ConflictError(f"user '{username}' already exists", where="username")
            user = m.User(username=username, full_name=full_name, password_hash=password_hash,
                          active=True, failed_logins=0, created_at=tx.at)
            tx.session.add(user)
            tx.session.flush()
            tx.audit("create", "user", username, {"full_name": {"old": None, "new": full_name}},
                     reason)
            return _user(user)

    def user_by_name(self, username: str) -> UserRecord | None:
        with self._read() as s:
            u = s.scalar(select(m.User).where(m.User.username == username))
            return _user(u) if u else None

    def user(self, user_id: int) -> UserRecord | None:
        with self._read() as s:
            u = s.get(m.User, user_id)
            return _user(u) if u else None

    def users(self) -> list[UserRecord]:
        with self._read() as s:
            return [_user(u) for u in s.scalars(select(m.User).order_by(m.User.username))]

    def set_password(self, username: str, password_hash: str, *, actor: str, reason: str) -> None:
        with self._write(actor) as tx:
            u = tx.session.scalar(select(m.User).where(m.User.username == username))
            if u is None:
                raise NotFoundError(f"no user '{username}'")
            u.password_hash = password_hash
            tx.audit("password", "user", username, {"password": {"old": "***", "new": "***"}},
                     reason)

    def set_active(self, username: str, active: bool, *, actor: str, reason: str) -> None:
        """Activate or deactivate a user (a deactivated user can neither log in nor act)."""
        with self._write(actor) as tx:
            u = tx.session.scalar(select(m.User).where(m.User.username == username))
            if u is None:
                raise NotFoundError(f"no user '{username}'")
            if u.active != active:
                tx.audit("update", "user", username, {"active": {"old": u.active, "new": active}},
                         reason)
                u.active = active

    # ------------------------------------------------------------------ idempotency keys

    def claim_idempotency(self, user_id: int, key_digest: str, request_digest: str
                          ) -> tuple[str, int | None, str | None, bytes | None]:
        """Claim an idempotency key for a request: ``("new", ...)`` when this is its first use
        (the key is held, unanswered, until :meth:`answer_idempotency`), ``("replay", status,
        content type, body)`` when the same request was answered before, ``("other", ...)``
        when the key was used for another request, ``("running", ...)`` while it is held."""
        try:
            with Session(self.engine) as s, s.begin():
                row = s.scalar(select(m.IdempotencyKey).where(
                    m.IdempotencyKey.user_id == user_id,
                    m.IdempotencyKey.key_digest == key_digest))
                if row is None:
                    s.add(m.IdempotencyKey(user_id=user_id, key_digest=key_digest,
                                           request_digest=request_digest,
                                           created_at=moment(self.now())))
                    return ("new", None, None, None)
                if row.request_digest != request_digest:
                    return ("other", None, None, None)
                if row.status is None:
                    return ("running", None, None, None)
                return ("replay", row.status, row.content_type, row.body)
        except IntegrityError:  # a concurrent retry claimed the key first
            return ("running", None, None, None)

    def answer_idempotency(self, user_id: int, key_digest: str, status: int,
                           content_type: str | None, body: bytes | None) -> None:
        """Keep the answer of a claimed key (``body`` None: forget the claim, so that the
        request can be made again — an error changed nothing)."""
        with Session(self.engine) as s, s.begin():
            row = s.scalar(select(m.IdempotencyKey).where(
                m.IdempotencyKey.user_id == user_id, m.IdempotencyKey.key_digest == key_digest))
            if row is None:
                return
            if body is None:
                s.delete(row)
            else:
                row.status, row.content_type, row.body = status, content_type, body

    def login_failed(self, username: str, *, address: str, user_agent: str, reason: str) -> None:
        """Audit a failed log-in (also of a user name that does not exist) with where it came
        from; :meth:`login_attempts` reads these back for throttling."""
        name = username[:64]
        with self._write(name) as tx:
            tx.audit("login_failed", "user", name,
                     {"address": {"old": None, "new": address[:100]},
                      "user_agent": {"old": None, "new": user_agent[:300]}}, reason)

    def login_attempts(self, username: str, since: datetime) -> list[AuditRow]:
        """The audited log-ins and failed log-ins of ``username`` since ``since``, oldest first."""
        with self._read() as s:
            rows = s.scalars(select(m.AuditEntry).where(
                m.AuditEntry.record_type == "user", m.AuditEntry.record_id == username[:64],
                m.AuditEntry.action.in_(("login", "login_failed")),
                m.AuditEntry.at >= moment(since)).order_by(m.AuditEntry.seq))
            return [AuditRow(r.seq, r.at, r.username, r.action, r.record_type, r.record_id,
                             json.loads(r.changes), r.reason, r.hash) for r in rows]

    def login_succeeded(self, username: str, *, address: str = "", user_agent: str = "") -> None:
        with self._write(username) as tx:
            u = tx.session.scalar(select(m.User).where(m.User.username == username))
            if u is None:
                raise NotFoundError(f"no user '{username}'")
            u.failed_logins = 0
            u.locked_until = None
            tx.audit("login", "user", username,
                     {"address": {"old": None, "new": address[:100]},
                      "user_agent": {"old": None, "new": user_agent[:300]}}, "log-in")

    def add_membership(self, username: str, trial_id: str, role: str, site: str | None = None,
                       *, actor: str, reason: str) -> None:
        with self._write(actor) as tx:
            u = tx.session.scalar(select(m.User).where(m.User.username == username))
            if u is None:
                raise NotFoundError(f"no user '{username}'")
            if tx.session.get(m.Trial, trial_id) is None:
                raise NotFoundError(f"no trial '{trial_id}'")
            tx.session.add(m.Membership(user_id=u.id, trial_id=trial_id, site=site, role=role))
            tx.audit("grant", "membership", f"{username}@{trial_id}",
                     {"role": {"old": None, "new": role}, "site": {"old": None, "new": site}},
                     reason)

    def memberships(self, user_id: int) -> list[MembershipRecord]:
        with self._read() as s:
            rows = s.scalars(select(m.Membership).where(m.Membership.user_id == user_id)
                             .order_by(m.Membership.trial_id, m.Membership.role))
            return [MembershipRecord(r.trial_id, r.site, r.role) for r in rows]

    # ------------------------------------------------------------------ sessions

    def create_session(self, token_hash: str, user_id: int, expires: datetime) -> None:
        with Session(self.engine) as s, s.begin():
            s.add(m.WebSession(token_hash=token_hash, user_id=user_id,
                               created_at=moment(self.now()), expires_at=moment(expires)))

    def session_user(self, token_hash: str, *, idle: timedelta | None = None,
                     lifetime: timedelta | None = None) -> UserRecord | None:
        """The user of a live session (None when unknown or expired).

        With ``idle`` and ``lifetime``, a use of the session moves its expiry to ``idle``
        from now, never past ``lifetime`` from its start: a session ends after ``idle``
        without use or ``lifetime`` after log-in, whichever comes first. (The expiry moves
        at most once a minute, so reads rarely write.)
        """
        with Session(self.engine) as s, s.begin():
            row = s.get(m.WebSession, token_hash)
            now = self.now()
            if row is None or parse_moment(row.expires_at) <= now:
                return None
            if idle is not None and lifetime is not None:
                expires = min(now + idle, parse_moment(row.created_at) + lifetime)
                if abs(expires - parse_moment(row.expires_at)) >= timedelta(minutes=1):
                    row.expires_at = moment(expires)
            u = s.get(m.User, row.user_id)
            return _user(u) if u and u.active else None

    def session_with_memberships(self, token_hash: str, *, idle: timedelta,
                                 lifetime: timedelta
                                 ) -> tuple[UserRecord, list[MembershipRecord]] | None:
        """:meth:`session_user` and the user's :meth:`memberships`, read in one statement
        (what every page asks first). When the session's expiry is due to move (at most
        once a minute), it is moved as :meth:`session_user` does."""
        u, w, ms = m.User.__table__.c, m.WebSession.__table__.c, m.Membership.__table__.c
        with self.engine.connect() as c:
            rows = c.execute(
                select(w.expires_at, w.created_at, u.id, u.username, u.full_name,
                       u.password_hash, u.active, u.failed_logins, u.locked_until, u.version,
                       ms.trial_id, ms.site, ms.role)
                .join_from(m.WebSession.__table__, m.User.__table__, u.id == w.user_id)
                .outerjoin(m.Membership.__table__, ms.user_id == u.id)
                .where(w.token_hash == token_hash)
                .order_by(ms.trial_id, ms.role)).all()
        if not rows:
            return None
        first, now = rows[0], self.now()
        expires = parse_moment(first.expires_at)
        if expires <= now or not first.active:
            return None
        if abs(min(now + idle, parse_moment(first.created_at) + lifetime) - expires
               ) >= timedelta(minutes=1):
            user = self.session_user(token_hash, idle=idle, lifetime=lifetime)
            return None if user is None else (user, self.memberships(user.id))
        user = UserRecord(first.id, first.username, first.full_name, first.password_hash,
                          bool(first.active), first.failed_logins, first.locked_until,
                          first.version)
        return user, [MembershipRecord(r.trial_id, r.site, r.role)
                      for r in rows if r.trial_id is not None]

    def end_session(self, token_hash: str, username: str) -> None:
        with self._write(username) as tx:
            row = tx.session.get(m.WebSession, token_hash)
            if row is not None:
                tx.session.delete(row)
            tx.audit("logout", "user", username, {}, "log-out")

    # ------------------------------------------------------------------ trials

    def import_protocol(self, document: Mapping[str, Any], *, source: str, actor: str,
                        reason: str, signature: tuple[int, str] | None = None
                        ) -> ProtocolVersionRecord:
        """Store a protocol document; a changed document becomes the trial's next version.

        The same document again returns the version already stored (nothing is written).
        ``signature`` (user id, meaning) signs a new version in the same transaction.
        """
        trial_id = str(document.get("id", ""))
        label = str(document.get("version", ""))
        if not trial_id:
            raise NotFoundError("the protocol has no id", where=source)
        doc_digest = digest(document)
        with self._write(actor) as tx:
            trial = tx.session.get(m.Trial, trial_id)
            if trial is not None:
                latest = tx.session.scalar(select(m.ProtocolVersion).where(
                    m.ProtocolVersion.trial_id == trial_id,
                    m.ProtocolVersion.number == trial.latest_version))
                if latest is not None and latest.digest == doc_digest:
                    return _version(latest)
                number = trial.latest_version + 1
                trial.latest_version = number
            else:
                number = 1
                trial = m.Trial(id=trial_id, created_at=tx.at, latest_version=1)
                tx.session.add(trial)
                tx.session.flush()
            row = m.ProtocolVersion(trial_id=trial_id, number=number, label=label,
                                    digest=doc_digest, document=canonical(document),
                                    source=source, created_at=tx.at, created_by=actor)
            tx.session.add(row)
            tx.session.flush()
            tx.audit("create" if number == 1 else "amend", "protocol", f"{trial_id}#{number}",
                     {"version": {"old": number - 1 or None, "new": number},
                      "label": {"old": None, "new": label},
                      "digest": {"old": None, "new": doc_digest}}, reason)
            if signature is not None:
                self._add_signature(tx, signature[0], signature[1], "protocol",
                                    f"{trial_id}#{number}", doc_digest, reason, trial_id)
            return _version(row)

    def trials(self) -> list[TrialRecord]:
        with self._read() as s:
            counts = dict(s.execute(select(m.ProtocolVersion.trial_id, func.count())
                                    .group_by(m.ProtocolVersion.trial_id)).all())
            rows = s.execute(select(m.Trial, m.ProtocolVersion).join(
                m.ProtocolVersion, (m.ProtocolVersion.trial_id == m.Trial.id)
                & (m.ProtocolVersion.number == m.Trial.latest_version)).order_by(m.Trial.id))
            return [TrialRecord(t.id, _version(v), counts.get(t.id, 0)) for t, v in rows]

    def protocol_version(self, trial_id: str, number: int | None = None) -> ProtocolVersionRecord:
        """One version of a trial's protocol (default: the latest)."""
        with self._read() as s:
            wanted = m.Trial.latest_version if number is None else number
            head = s.execute(select(m.ProtocolVersion.id, m.ProtocolVersion.digest)
                             .join(m.Trial, m.Trial.id == m.ProtocolVersion.trial_id)
                             .where(m.Trial.id == trial_id, m.ProtocolVersion.number == wanted)
                             ).first()
            if head is not None:
                # A version is never changed once stored: its record (a large document) is
                # read and parsed once per store, then found by its id and digest.
                key = (head.id, head.digest)
                found = self._versions.get(key)
                if found is None:
                    row = s.get(m.ProtocolVersion, head.id)
                    assert row is not None
                    found = _version(row)
                    if len(self._versions) >= 256:
                        self._versions.clear()
                    self._versions[key] = found
                return found
            trial = s.get(m.Trial, trial_id)  # which is missing, in words
            if trial is None:
                raise NotFoundError(f"no trial '{trial_id}'")
            raise NotFoundError(f"trial '{trial_id}' has no protocol version "
                                f"{trial.latest_version if number is None else number}")

    def protocol_version_by_id(self, version_id: int) -> ProtocolVersionRecord:
        with self._read() as s:
            row = s.get(m.ProtocolVersion, version_id)
            if row is None:
                raise NotFoundError(f"no protocol version {version_id}")
            return _version(row)

    def protocol_versions(self, trial_id: str) -> list[ProtocolVersionRecord]:
        with self._read() as s:
            if s.get(m.Trial, trial_id) is None:
                raise NotFoundError(f"no trial '{trial_id}'")
            rows = s.scalars(select(m.ProtocolVersion).where(m.ProtocolVersion.trial_id == trial_id)
                             .order_by(m.ProtocolVersion.number))
            return [_version(r) for r in rows]

    # ------------------------------------------------------------------ patients

    def add_patient(self, study_number: str, trial_id: str, site: str, record: Mapping[str, Any],
                    identifiers: Mapping[str, Any], *, actor: str, reason: str) -> PatientRecordRow:
        with self._write(actor) as tx:
            return self._insert_patient(tx, study_number, trial_id, site, record, identifiers,
                                        reason)

    def add_numbered_patient(self, trial_id: str, prefix: str, site: str,
                             record: Mapping[str, Any], identifiers: Mapping[str, Any], *,
                             actor: str, reason: str, idempotency: tuple[str, str] | None = None
                             ) -> PatientRecordRow:
        """A new patient under the trial's next free study number (``PREFIX-0001``…), chosen
        inside the insert transaction (the writers' lock is held), so concurrent creates
        never pick the same number; the record's ``patient_id`` is set to it.

        ``idempotency`` (key digest, request digest): a create already made by ``actor``
        with the same key is returned instead of making a second patient (the key is kept
        in the create's audit entry); the same key with another request is refused.
        """
        with self._write(actor) as tx:
            if idempotency is not None:
                done = self._idempotent_create(tx, *idempotency)
                if done is not None:
                    return done
            number = self._free_study_number(tx.session, trial_id, prefix)
            extra = ({"$.idempotency": {"old": None, "new": ":".join(idempotency)}}
                     if idempotency else {})
            return self._insert_patient(tx, number, trial_id, site,
                                        {**record, "patient_id": number}, identifiers, reason,
                                        extra)

    @staticmethod
    def _idempotent_create(tx: Tx, key: str, request: str) -> PatientRecordRow | None:
        entry = tx.session.scalars(select(m.AuditEntry).where(
            m.AuditEntry.record_type == "patient", m.AuditEntry.action == "create",
            m.AuditEntry.username == tx.actor,
            m.AuditEntry.changes.contains(f'"{key}:', autoescape=True))).first()
        if entry is None:
            return None
        if json.loads(entry.changes)["$.idempotency"]["new"] != f"{key}:{request}":
            raise ConflictError("this Idempotency-Key was used for another request; use a new "
                                "key for a new patient", where="Idempotency-Key")
        row = tx.session.scalar(select(m.Patient).where(m.Patient.study_number == entry.record_id))
        if row is None:
            raise NotFoundError(f"no patient '{entry.record_id}'")
        return _patient(row)

    def _insert_patient(self, tx: Tx, study_number: str, trial_id: str, site: str,
                        record: Mapping[str, Any], identifiers: Mapping[str, Any], reason: str,
                        extra: Mapping[str, Any] | None = None) -> PatientRecordRow:
        if tx.session.get(m.Trial, trial_id) is None:
            raise NotFoundError(f"no trial '{trial_id}'", where="trial_id")
        if tx.session.scalar(select(m.Patient).where(m.Patient.study_number == study_number)):
            raise ConflictError(f"patient '{study_number}' already exists", where="study_number")
        row = m.Patient(study_number=study_number, trial_id=trial_id, site=site,
                        record=canonical(record), identifiers=canonical(identifiers),
                        created_at=tx.at, updated_at=tx.at, updated_by=tx.actor)
        tx.session.add(row)
        try:
            tx.session.flush()
        except IntegrityError:
            raise ConflictError(f"patient '{study_number}' already exists",
                                where="study_number") from None
        changes = {"$.trial_id": {"old": None, "new": trial_id},
                   "$.site": {"old": None, "new": site},
                   **diff(None, dict(record), "$.record")}
        changes.update({f"$.identifiers.{k}": {"old": None, "new": "***"} for k in identifiers})
        changes.update(extra or {})
        tx.audit("create", "patient", study_number, changes, reason)
        return _patient(row)

    def update_patient(self, study_number: str, *, expected_version: int,
                       record: Mapping[str, Any] | None = None,
                       identifiers: Mapping[str, Any] | None = None,
                       actor: str, reason: str) -> PatientRecordRow:
        """Save a changed patient, refusing a save based on a stale version."""
        with self._write(actor) as tx:
            row = tx.session.scalar(select(m.Patient).where(m.Patient.study_number == study_number))
            if row is None:
                raise NotFoundError(f"no patient '{study_number}'")
            if row.version != expected_version:
                raise ConflictError(
                    f"patient {study_number} was changed by {row.updated_by} at {row.updated_at} "
                    f"(it is now version {row.version}; your copy is version {expected_version}); "
                    "reload it and apply your change again", where="version")
            changes: dict[str, Any] = {}
            if record is not None:
                changes.update(diff(json.loads(row.record), dict(record), "$.record"))
                row.record = canonical(record)
            if identifiers is not None:
                old_ids = json.loads(row.identifiers)
                for key in {*old_ids, *identifiers}:
                    if old_ids.get(key) != identifiers.get(key):
                        changes[f"$.identifiers.{key}"] = {"old": "***", "new": "***"}
                row.identifiers = canonical(identifiers)
            if not changes:
                return _patient(row)
            row.updated_at = tx.at
            row.updated_by = actor
            tx.session.flush()
            tx.audit("update", "patient", study_number, changes, reason)
            return _patient(row)

    def patient(self, study_number: str) -> PatientRecordRow:
        with self._read() as s:
            row = s.scalar(select(m.Patient).where(m.Patient.study_number == study_number))
            if row is None:
                raise NotFoundError(f"no patient '{study_number}'")
            return _patient(row)

    def patients(self, scopes: list[tuple[str, str | None]], *, offset: int = 0, limit: int = 50,
                 trial_id: str | None = None) -> Page:
        """Patients inside ``scopes`` ((trial, site or None for every site)), by study number."""
        if not scopes:
            return Page([], 0, offset, limit)
        from sqlalchemy import and_, or_

        cond = or_(*[and_(m.Patient.trial_id == t, *([m.Patient.site == site] if site else []))
                     for t, site in scopes])
        if trial_id is not None:
            cond = and_(cond, m.Patient.trial_id == trial_id)
        with self._read() as s:
            total = s.scalar(select(func.count()).select_from(m.Patient).where(cond)) or 0
            rows = s.scalars(select(m.Patient).where(cond).order_by(m.Patient.study_number)
                             .offset(offset).limit(limit))
            return Page([_patient(r) for r in rows], total, offset, limit)

    def patient_identities(self, scopes: list[tuple[str, str | None]]
                           ) -> list[tuple[str, str, dict[str, Any]]]:
        """(trial, site, identifying values: the identifiers and the birth date) of every
        patient inside ``scopes``."""
        if not scopes:
            return []
        from sqlalchemy import and_, or_

        cond = or_(*[and_(m.Patient.trial_id == t, *([m.Patient.site == site] if site else []))
                     for t, site in scopes])
        with self._read() as s:
            rows = s.execute(select(m.Patient.trial_id, m.Patient.site, m.Patient.record,
                                    m.Patient.identifiers).where(cond))
            return [(t, site, {**json.loads(ids),
                               "birth_date": json.loads(record).get("birth_date")})
                    for t, site, record, ids in rows]

    def next_study_number(self, trial_id: str, prefix: str) -> str:
        """The next free study number now (a later insert may take it first: to create a
        patient use :meth:`add_numbered_patient`)."""
        with self._read() as s:
            return self._free_study_number(s, trial_id, prefix)

    @staticmethod
    def _free_study_number(s: Session, trial_id: str, prefix: str) -> str:
        count = s.scalar(select(func.count()).select_from(m.Patient)
                         .where(m.Patient.trial_id == trial_id)) or 0
        existing = set(s.scalars(select(m.Patient.study_number)
                                 .where(m.Patient.study_number.startswith(f"{prefix}-", autoescape=True))))
        n = count + 1
        while f"{prefix}-{n:04d}" in existing:
            n += 1
        return f"{prefix}-{n:04d}"

    # ------------------------------------------------------------------ screenings

    def add_screening(self, study_number: str, protocol_version_id: int, patient_version: int,
                      result: Mapping[str, Any], *, actor: str, reason: str) -> ScreeningRow:
        """Store a screening result, naming the protocol version and patient version it used."""
        with self._write(actor) as tx:
            p = tx.session.scalar(select(m.Patient).where(m.Patient.study_number == study_number))
            if p is None:
                raise NotFoundError(f"no patient '{study_number}'")
            if p.version != patient_version:
                raise ConflictError(f"patient {study_number} changed while screening (now version "
                                    f"{p.version}); screen again", where="patient_version")
            v = tx.session.get(m.ProtocolVersion, protocol_version_id)
            if v is None:
                raise NotFoundError(f"no protocol version {protocol_version_id}")
            row = m.Screening(patient_id=p.id, protocol_version_id=v.id,
                              patient_version=patient_version, as_of=str(result["as_of"]),
                              verdict=str(result["verdict"]), arm=result.get("arm"),
                              result=canonical(result), created_at=tx.at, created_by=actor)
            tx.session.add(row)
            tx.session.flush()
            tx.audit("screen", "screening", study_number,
                     {"screening_id": {"old": None, "new": row.id},
                      "protocol": {"old": None, "new": f"{v.trial_id}#{v.number} ({v.label})"},
                      "verdict": {"old": None, "new": row.verdict},
                      "arm": {"old": None, "new": row.arm}}, reason)
            return self._screening_row(row, p, v)

    @staticmethod
    def _screening_row(row: m.Screening, p: m.Patient, v: m.ProtocolVersion) -> ScreeningRow:
        return ScreeningRow(row.id, p.study_number, v.trial_id, v.id, v.number, v.label,
                            row.patient_version, row.as_of, row.verdict, row.arm,
                            json.loads(row.result), row.created_at, row.created_by)

    def screenings(self, study_number: str) -> list[ScreeningRow]:
        with self._read() as s:
            rows = s.execute(select(m.Screening, m.Patient, m.ProtocolVersion)
                             .join(m.Patient, m.Patient.id == m.Screening.patient_id)
                             .join(m.ProtocolVersion,
                                   m.ProtocolVersion.id == m.Screening.protocol_version_id)
                             .where(m.Patient.study_number == study_number)
                             .order_by(m.Screening.id.desc()))
            return [self._screening_row(r, p, v) for r, p, v in rows]

    def screening(self, screening_id: int) -> ScreeningRow:
        with self._read() as s:
            row = s.execute(select(m.Screening, m.Patient, m.ProtocolVersion)
                            .join(m.Patient, m.Patient.id == m.Screening.patient_id)
                            .join(m.ProtocolVersion,
                                  m.ProtocolVersion.id == m.Screening.protocol_version_id)
                            .where(m.Screening.id == screening_id)).first()
            if row is None:
                raise NotFoundError(f"no screening {screening_id}")
            return self._screening_row(*row)

    # ------------------------------------------------------------------ signatures

    def sign(self, user_id: int, meaning: str, record_type: str, record_id: str,
             record_digest: str, *, reason: str, audit_id: str | None = None) -> SignatureRow:
        """Store an e-signature bound to the digest of the signed record's content.

        ``audit_id`` files the audit entry under another record id (a patient's study
        number, so that the patient's trail shows the signature); default ``record_id``.
        """
        with self._write(self._username(user_id)) as tx:
            sig = self._add_signature(tx, user_id, meaning, record_type, record_id, record_digest,
                                      reason, audit_id or record_id)
            return signature_row(sig)

    def _username(self, user_id: int) -> str:
        u = self.user(user_id)
        if u is None:
            raise NotFoundError(f"no user {user_id}")
        return u.username

    def signatures_for(self, record_type: str, record_id_prefix: str) -> list[SignatureRow]:
        """Every signature of one kind whose record id starts with ``record_id_prefix``."""
        with self._read() as s:
            rows = s.scalars(select(m.Signature).where(
                m.Signature.record_type == record_type,
                m.Signature.record_id.startswith(record_id_prefix, autoescape=True))
                .order_by(m.Signature.id))
            return [signature_row(r) for r in rows]

    def signatures_under(self, record_type: str, record_id_prefixes: Sequence[str]
                         ) -> dict[str, list[SignatureRow]]:
        """:meth:`signatures_for` of each prefix, read in one statement."""
        out: dict[str, list[SignatureRow]] = {p: [] for p in record_id_prefixes}
        if not record_id_prefixes:
            return out
        with self._read() as s:
            rows = s.scalars(select(m.Signature).where(
                m.Signature.record_type == record_type,
                or_(*(m.Signature.record_id.startswith(p, autoescape=True) for p in out)))
                .order_by(m.Signature.id))
            for r in rows:
                row = signature_row(r)
                for prefix, found in out.items():
                    if r.record_id.startswith(prefix):
                        found.append(row)
        return out

    def signatures(self, record_type: str, record_id: str) -> list[SignatureRow]:
        with self._read() as s:
            rows = s.scalars(select(m.Signature).where(m.Signature.record_type == record_type,
                                                       m.Signature.record_id == record_id)
                             .order_by(m.Signature.id))
            return [signature_row(r) for r in rows]

    # ------------------------------------------------------------------ enrolment

    def enrol(self, study_number: str, screening_id: int, user_id: int, *, meaning: str,
              record_digest: str, reason: str, journey: Mapping[str, Any] | None = None,
              allocate: Allocate | None = None, randomisation_id: str | None = None
              ) -> EnrolmentRow:
        """Enrol a patient on a screening, under that screening's protocol version.

        The investigator's e-signature confirming eligibility is stored in the same
        transaction and bound to the screening result. ``journey`` (the calendar inputs:
        the core enrolment ``document``, ``arm``, ``arm_basis``, ``consent_id``, ``start``,
        ``anchors`` and an ``override_by``/``override_reason``) is stored with it; only an
        override lets a screening that is not eligible be enrolled. ``allocate`` randomises
        the patient from the trial's sealed list in the same transaction.
        """
        with self._write(self._username(user_id)) as tx:
            p = tx.session.scalar(select(m.Patient).where(m.Patient.study_number == study_number))
            if p is None:
                raise NotFoundError(f"no patient '{study_number}'")
            sc = tx.session.get(m.Screening, screening_id)
            if sc is None or sc.patient_id != p.id:
                raise NotFoundError(f"no screening {screening_id} of patient {study_number}",
                                    where="screening_id")
            if tx.session.scalar(select(m.Enrolment).where(m.Enrolment.patient_id == p.id)):
                raise ConflictError(f"patient {study_number} is already enrolled")
            v = tx.session.get(m.ProtocolVersion, sc.protocol_version_id)
            assert v is not None  # foreign key
            overridden = bool(journey and journey.get("override_by"))
            if sc.verdict != "eligible" and not overridden:
                raise ConflictError(f"screening {screening_id} found the patient {sc.verdict}; "
                                    "only an eligible screening can be confirmed (or an "
                                    "investigator's override with a reason)",
                                    where="screening_id")
            if sc.patient_version != p.version:
                raise ConflictError(f"patient {study_number} changed after screening "
                                    f"{screening_id}; screen again before enrolling",
                                    where="screening_id")
            sig = self._add_signature(tx, user_id, meaning, "screening", str(sc.id),
                                      record_digest, reason, study_number)
            arm = journey.get("arm") if journey is not None else sc.arm
            row = m.Enrolment(patient_id=p.id, trial_id=v.trial_id, protocol_version_id=v.id,
                              screening_id=sc.id, signature_id=sig.id, arm=arm,
                              enrolled_at=tx.at, enrolled_by=tx.actor)
            tx.session.add(row)
            tx.session.flush()
            tx.audit("enrol", "enrolment", study_number,
                     {"trial": {"old": None, "new": v.trial_id},
                      "protocol_version": {"old": None, "new": f"{v.number} ({v.label})"},
                      "arm": {"old": None, "new": arm}}, reason)
            if journey is not None:
                self._add_journey(tx, p, row, journey, allocate, randomisation_id, reason)
            return self._enrolment_row(row, p, v, sig)

    @staticmethod
    def _enrolment_row(row: m.Enrolment, p: m.Patient, v: m.ProtocolVersion,
                       sig: m.Signature) -> EnrolmentRow:
        return EnrolmentRow(row.id, p.study_number, row.trial_id, v.id, v.number, v.label,
                            row.screening_id, signature_row(sig), row.arm, row.enrolled_at,
                            row.enrolled_by, row.version)

    def enrolment(self, study_number: str) -> EnrolmentRow | None:
        return self.enrolments([study_number])[study_number]

    def enrolments(self, study_numbers: Sequence[str]) -> dict[str, EnrolmentRow | None]:
        """Each patient's enrolment (None: not enrolled), in one statement."""
        out: dict[str, EnrolmentRow | None] = dict.fromkeys(study_numbers)
        if not study_numbers:
            return out
        with self._read() as s:
            for found in s.execute(
                    select(m.Enrolment, m.Patient, m.ProtocolVersion, m.Signature)
                    .join(m.Patient, m.Patient.id == m.Enrolment.patient_id)
                    .join(m.ProtocolVersion,
                          m.ProtocolVersion.id == m.Enrolment.protocol_version_id)
                    .join(m.Signature, m.Signature.id == m.Enrolment.signature_id)
                    .where(m.Patient.study_number.in_(set(study_numbers)))):
                row = self._enrolment_row(*found)
                out[row.study_number] = row
        return out

    def trial_counts(self, trial_id: str, arms: list[str]) -> TrialCounts:
        """Screened, eligible (latest screening per patient) and enrolled, per arm."""
        with self._read() as s:
            latest = (select(func.max(m.Screening.id).label("id"))
                      .join(m.Patient, m.Patient.id == m.Screening.patient_id)
                      .join(m.ProtocolVersion,
                            m.ProtocolVersion.id == m.Screening.protocol_version_id)
                      .where(m.ProtocolVersion.trial_id == trial_id)
                      .group_by(m.Screening.patient_id)).subquery()
            rows = s.execute(select(m.Screening.verdict, m.Screening.arm)
                             .where(m.Screening.id.in_(select(latest.c.id)))).all()
            enrolled = [allocated or arm for arm, allocated in s.execute(
                select(m.Enrolment.arm, m.Allocation.arm)
                .outerjoin(m.Journey, m.Journey.enrolment_id == m.Enrolment.id)
                .outerjoin(m.Allocation, m.Allocation.journey_id == m.Journey.id)
                .where(m.Enrolment.trial_id == trial_id))]
        by_arm: dict[str, dict[str, int]] = {a: {"screened": 0, "eligible": 0, "enrolled": 0}
                                             for a in [*arms, "unassigned"]}
        for verdict, arm in rows:
            key = arm if arm in by_arm else "unassigned"
            by_arm[key]["screened"] += 1
            by_arm[key]["eligible"] += verdict == "eligible"
        for arm in enrolled:
            by_arm[arm if arm in by_arm else "unassigned"]["enrolled"] += 1
        return TrialCounts(trial_id, len(rows), sum(v == "eligible" for v, _ in rows),
                           len(enrolled), by_arm)

    # ------------------------------------------------------------------ audit

    def audit_entries(self, *, offset: int = 0, limit: int = 50, record_type: str | None = None,
                      record_id: str | None = None, record_ids: list[str] | None = None) -> Page:
        """Audit entries, newest first, optionally for one record or a set of records."""
        conds = []
        if record_type is not None:
            conds.append(m.AuditEntry.record_type == record_type)
        if record_id is not None:
            conds.append(m.AuditEntry.record_id == record_id)
        if record_ids is not None:
            conds.append(m.AuditEntry.record_id.in_(record_ids))
        with self._read() as s:
            total = s.scalar(select(func.count()).select_from(m.AuditEntry).where(*conds)) or 0
            rows = s.scalars(select(m.AuditEntry).where(*conds).order_by(m.AuditEntry.seq.desc())
                             .offset(offset).limit(limit))
            items = [AuditRow(r.seq, r.at, r.username, r.action, r.record_type, r.record_id,
                              json.loads(r.changes), r.reason, r.hash) for r in rows]
            return Page(items, total, offset, limit)

    def verify_audit(self) -> ChainReport:
        """Recompute the whole chain; every edited or deleted entry is reported."""
        with self._read() as s:
            head_row = s.get(m.AuditHead, 1)
            head = (head_row.seq, head_row.hash) if head_row else None
            links = (AuditLink(r.seq, r.prev_hash, r.hash, {
                "seq": r.seq, "at": r.at, "username": r.username, "action": r.action,
                "record_type": r.record_type, "record_id": r.record_id, "changes": r.changes,
                "reason": r.reason}) for r in s.scalars(select(m.AuditEntry)
                                                         .order_by(m.AuditEntry.seq)
                                                         .execution_options(yield_per=1000)))
            return verify_chain(links, head=head)

