"""Who acts, and how they prove it: users' permissions per trial and site, password checks
with lock-out, and the re-authentication an e-signature needs.

The same rules hold on every interface: the web application turns a session cookie into a
:class:`Principal`, the command line a ``--by`` user name (:func:`principal_for`); both
check permissions with :meth:`Principal.require` before a service touches a record.

* Passwords are hashed with Argon2id (argon2-cffi's defaults, RFC 9106); a hash made with
  older parameters is replaced at the next log-in.
* Failed log-ins are throttled per user name and address with growing delays (see
  :class:`Accounts`), never by a lock a stranger can set; every attempt is audited.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

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


def password_matches(password_hash: str, password: str) -> bool:
    """Whether ``password`` is the one ``password_hash`` was made from."""
    return _verify(password_hash, password)


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


WRONG = "wrong user name or password"
SIGNATURE = "e-signature"  # the "address" of failed signature passwords


@dataclass(frozen=True)
class Accounts:
    """Password checks with throttling, shared by log-in and e-signatures.

    Failed attempts are counted per user name *and* address (from the audit trail, over the
    last day, since the last success from that address): the first ``lockout_threshold``
    cost nothing, each further one must wait twice as long as the one before (2 s, 4 s,
    8 s… at most ``lockout_minutes``) after the last. A stranger elsewhere cannot lock
    anyone out; an unknown user, a wrong password and a throttled attempt get the same
    answer, and every failure is audited with its address and user agent.
    """

    store: Store
    lockout_threshold: int = 5
    lockout_minutes: int = 15

    def authenticate(self, username: str, password: str, *, address: str = "",
                     user_agent: str = "") -> UserRecord:
        """The user, if the password is right and this address is not being throttled."""
        wait = self.wait(username, address)
        user = self.store.user_by_name(username) if not wait else None
        if user is None or not user.active or not _verify(user.password_hash, password):
            if user is None or not user.active:
                _verify(_DUMMY_HASH, password)  # equal work whatever the reason
            reason = (f"throttled: attempt {wait.total_seconds():.0f} s early" if wait else
                      "unknown or inactive user" if user is None or not user.active else
                      "wrong password")
            self.store.login_failed(username, address=address, user_agent=user_agent,
                                    reason=reason)
            raise AccessError(WRONG, status=401)
        if _hasher.check_needs_rehash(user.password_hash):
            self.store.set_password(username, hash_password(password), actor=username,
                                    reason="password hash parameters updated")
        self.store.login_succeeded(username, address=address, user_agent=user_agent)
        return user

    def wait(self, username: str, address: str) -> timedelta:
        """How much longer ``address`` must wait before its next attempt at ``username``
        (zero when it may try now)."""
        now = self.store.now()
        failures: list[datetime] = []
        for entry in self.store.login_attempts(username, now - timedelta(days=1)):
            if entry.changes.get("address", {}).get("new", "") != address:
                continue
            if entry.action == "login":
                failures = []
            else:
                failures.append(parse_moment(entry.at))
        extra = len(failures) - self.lockout_threshold
        if extra < 0:
            return timedelta(0)
        delay = min(timedelta(seconds=2 ** min(extra + 1, 20)),
                    timedelta(minutes=self.lockout_minutes))
        return max(failures[-1] + delay - now, timedelta(0))

    def confirm_password(self, principal: Principal, password: str) -> UserRecord:
        """Re-authentication for an e-signature (21 CFR 11.200(a)): the signer's password."""
        user = principal.require_user()
        current = self.store.user(user.id)
        if current is None or not current.active:
            raise AccessError("log in first", status=401)
        wait = self.wait(current.username, SIGNATURE)
        if wait or not _verify(current.password_hash, password):
            self.store.login_failed(current.username, address=SIGNATURE, user_agent="",
                                    reason="signature password refused" + (
                                        " (throttled)" if wait else ""))
            raise AccessError("the password is wrong; nothing was signed", status=401)
        return current
