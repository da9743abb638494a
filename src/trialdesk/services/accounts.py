"""Who acts, and how they prove it: users' permissions per trial and site, password checks
with lock-out, and the re-authentication an e-signature needs.

The same rules hold on every interface: the web application turns a session cookie into a
:class:`Principal`, the command line a ``--by`` user name (:func:`principal_for`); both
check permissions with :meth:`Principal.require` before a service touches a record.

* Passwords are hashed with Argon2id (argon2-cffi's defaults, RFC 9106); a hash made with
  older parameters is replaced at the next log-in.
* After ``lockout_threshold`` failed log-ins (or failed signature passwords) the account is
  locked for ``lockout_minutes``; every attempt is in the audit trail.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from trialdesk.errors import AccessError
from trialdesk.services.roles import Permission, allowed
from trialdesk.store import Store
from trialdesk.store.records import MembershipRecord, UserRecord
from trialdesk.store.store import parse_moment

_hasher = PasswordHasher()
_DUMMY_HASH = _hasher.hash("not a password")  # equal work for unknown user names


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


@dataclass(frozen=True)
class Principal:
    """Who is asking: a user with memberships, or nobody (anonymous)."""

    user: UserRecord | None
    memberships: tuple[MembershipRecord, ...] = ()
    session_hash: str | None = None

    @property
    def username(self) -> str:
        return self.user.username if self.user else "anonymous"

    def can(self, permission: Permission, trial_id: str, site: str | None = None) -> bool:
        """Whether a membership of ``trial_id`` (covering ``site``) grants ``permission``.

        With ``site`` None, a membership at any site of the trial counts (trial-level views).
        """
        return any(m.trial_id == trial_id and (site is None or m.site is None or m.site == site)
                   and allowed(m.role, permission) for m in self.memberships)

    def can_anywhere(self, permission: Permission) -> bool:
        return any(allowed(m.role, permission) for m in self.memberships)

    def scopes(self, permission: Permission) -> list[tuple[str, str | None]]:
        """(trial, site or None for all sites) where ``permission`` is granted."""
        found: dict[tuple[str, str | None], None] = {}
        for m in self.memberships:
            if allowed(m.role, permission):
                found.setdefault((m.trial_id, m.site), None)
        return list(found)

    def roles(self, trial_id: str) -> list[str]:
        return sorted({m.role for m in self.memberships if m.trial_id == trial_id})

    def require_user(self) -> UserRecord:
        if self.user is None:
            raise AccessError("log in first", status=401)
        return self.user

    def require(self, permission: Permission, trial_id: str, site: str | None = None) -> UserRecord:
        user = self.require_user()
        if not self.can(permission, trial_id, site):
            raise AccessError(f"your role in {trial_id} does not allow {permission.value}")
        return user


def principal_for(store: Store, username: str) -> Principal:
    """The principal of a named, active user (the command line's ``--by``)."""
    user = store.user_by_name(username)
    if user is None:
        raise AccessError(f"no user '{username}'; add one with `trialdesk db add-user`",
                          where="--by", status=401)
    if not user.active:
        raise AccessError(f"user '{username}' is not active", where="--by", status=401)
    return Principal(user, tuple(store.memberships(user.id)))


@dataclass(frozen=True)
class Accounts:
    """Password checks with lock-out, shared by log-in and e-signatures."""

    store: Store
    lockout_threshold: int = 5
    lockout_minutes: int = 15

    def authenticate(self, username: str, password: str) -> UserRecord:
        """The user, if the password is right and the account is not locked."""
        user = self.store.user_by_name(username)
        if user is None or not user.active:
            _verify(_DUMMY_HASH, password)
            raise AccessError("wrong user name or password", status=401)
        self._not_locked(user)
        if not _verify(user.password_hash, password):
            self._failed(user, "wrong user name or password")
        if _hasher.check_needs_rehash(user.password_hash):
            self.store.set_password(username, hash_password(password), actor=username,
                                    reason="password hash parameters updated")
        self.store.login_succeeded(username)
        return user

    def _not_locked(self, user: UserRecord) -> None:
        if user.locked_until and parse_moment(user.locked_until) > self.store.now():
            until = parse_moment(user.locked_until).strftime("%H:%M")
            raise AccessError(f"too many failed attempts: the account is locked until {until} UTC",
                              status=401)

    def _failed(self, user: UserRecord, message: str) -> None:
        updated = self.store.login_failed(user.username, threshold=self.lockout_threshold,
                                          lock_for=timedelta(minutes=self.lockout_minutes))
        if updated.locked_until:
            self._not_locked(updated)
        raise AccessError(message, status=401)

    def confirm_password(self, principal: Principal, password: str) -> UserRecord:
        """Re-authentication for an e-signature (21 CFR 11.200(a)): the signer's password."""
        user = principal.require_user()
        current = self.store.user(user.id)
        if current is None or not current.active:
            raise AccessError("log in first", status=401)
        self._not_locked(current)
        if not _verify(current.password_hash, password):
            self._failed(current, "the password is wrong; nothing was signed")
        return current
