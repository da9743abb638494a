"""Log-in, sessions, CSRF, lock-out and the current user's permissions.

* Passwords are hashed with Argon2id (argon2-cffi's defaults, RFC 9106); a hash made with
  older parameters is replaced at the next log-in.
* A session is a random token in an HttpOnly, Secure, SameSite=Lax cookie; the database
  keeps only its SHA-256, so log-out (or expiry) ends it for good.
* CSRF: every form and every unsafe API call carries a token equal to the ``td_csrf``
  cookie, which is signed (itsdangerous) and bound to the session (signed double-submit).
* After ``lockout_threshold`` failed log-ins (or failed signature passwords) the account
  is locked for ``lockout_minutes``; every attempt is in the audit trail.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from fastapi import Request
from itsdangerous import BadSignature, URLSafeTimedSerializer

from trialdesk.store import AccessError, Store
from trialdesk.store.records import MembershipRecord, UserRecord
from trialdesk.store.store import parse_moment
from trialdesk.web.roles import Permission, allowed
from trialdesk.web.settings import Settings

SESSION_COOKIE = "td_session"
CSRF_COOKIE = "td_csrf"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

_hasher = PasswordHasher()
_DUMMY_HASH = _hasher.hash("not a password")  # equal work for unknown user names


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


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


class Auth:
    """Log-in, sessions and CSRF tokens for one application."""

    def __init__(self, store: Store, settings: Settings) -> None:
        self.store = store
        self.settings = settings
        self.signer = URLSafeTimedSerializer(settings.secret_key, salt="trialdesk.csrf")

    # -------------------------------------------------------------- log-in

    def authenticate(self, username: str, password: str) -> UserRecord:
        """The user, if the password is right and the account is not locked."""
        user = self.store.user_by_name(username)
        if user is None or not user.active:
            _verify(_DUMMY_HASH, password)
            raise AccessError("wrong user name or password", status=401)
        self._not_locked(user)
        if not _verify(user.password_hash, password):
            self._failed(user)
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

    def _failed(self, user: UserRecord) -> None:
        s = self.settings
        updated = self.store.login_failed(user.username, threshold=s.lockout_threshold,
                                          lock_for=timedelta(minutes=s.lockout_minutes))
        if updated.locked_until:
            self._not_locked(updated)
        raise AccessError("wrong user name or password", status=401)

    def confirm_password(self, principal: Principal, password: str) -> UserRecord:
        """Re-authentication for an e-signature (21 CFR 11.200(a)): the signer's password."""
        user = principal.require_user()
        current = self.store.user(user.id)
        if current is None or not current.active:
            raise AccessError("log in first", status=401)
        self._not_locked(current)
        if not _verify(current.password_hash, password):
            s = self.settings
            updated = self.store.login_failed(current.username, threshold=s.lockout_threshold,
                                              lock_for=timedelta(minutes=s.lockout_minutes))
            if updated.locked_until:
                self._not_locked(updated)
            raise AccessError("the password is wrong; nothing was signed", status=401)
        return current

    def start_session(self, user: UserRecord) -> str:
        token = secrets.token_urlsafe(32)
        self.store.create_session(token_hash(token), user.id, self.store.now()
                                  + timedelta(hours=self.settings.session_hours))
        return token

    def principal(self, request: Request) -> Principal:
        cached = getattr(request.state, "principal", None)
        if isinstance(cached, Principal):
            return cached
        token = request.cookies.get(SESSION_COOKIE)
        principal = Principal(None)
        if token:
            hashed = token_hash(token)
            user = self.store.session_user(hashed)
            if user is not None:
                principal = Principal(user, tuple(self.store.memberships(user.id)), hashed)
        request.state.principal = principal
        return principal

    # -------------------------------------------------------------- CSRF

    @staticmethod
    def _binding(principal: Principal) -> str:
        return principal.session_hash[:32] if principal.session_hash else "anonymous"

    def _valid(self, token: str | None, principal: Principal) -> bool:
        if not token:
            return False
        try:
            data = self.signer.loads(token, max_age=int(self.settings.session_hours * 3600) + 3600)
        except BadSignature:
            return False
        return isinstance(data, dict) and data.get("b") == self._binding(principal)

    def csrf_token(self, request: Request, principal: Principal | None = None) -> str:
        """The token for forms on this page; a new one is set as a cookie when needed."""
        principal = principal or self.principal(request)
        current = getattr(request.state, "csrf_new", None) or request.cookies.get(CSRF_COOKIE)
        if self._valid(current, principal):
            return str(current)
        token = str(self.signer.dumps({"b": self._binding(principal), "n": secrets.token_hex(8)}))
        request.state.csrf_new = token
        return token

    def new_csrf(self, principal: Principal) -> str:
        return str(self.signer.dumps({"b": self._binding(principal), "n": secrets.token_hex(8)}))

    async def check_csrf(self, request: Request) -> None:
        """Refuse an unsafe request whose token does not match the cookie and the session."""
        if request.method in SAFE_METHODS:
            return
        cookie = request.cookies.get(CSRF_COOKIE)
        sent = request.headers.get(CSRF_HEADER)
        if sent is None and request.headers.get("content-type", "").startswith(
                ("application/x-www-form-urlencoded", "multipart/form-data")):
            form = await request.form()
            value = form.get(CSRF_FIELD)
            sent = value if isinstance(value, str) else None
        if not (cookie and sent and hmac.compare_digest(cookie, sent)
                and self._valid(cookie, self.principal(request))):
            raise AccessError("the form is out of date or did not come from this site (CSRF "
                              "check failed); reload the page and try again", status=403)

    # -------------------------------------------------------------- cookies

    def set_cookies(self, response: Any, *, session: str | None = None, csrf: str | None = None,
                    clear: bool = False) -> None:
        secure = self.settings.cookie_secure
        max_age = int(self.settings.session_hours * 3600)
        if clear:
            response.delete_cookie(SESSION_COOKIE, path="/", secure=secure, httponly=True,
                                   samesite="lax")
        if session is not None:
            response.set_cookie(SESSION_COOKIE, session, max_age=max_age, path="/",
                                secure=secure, httponly=True, samesite="lax")
        if csrf is not None:
            response.set_cookie(CSRF_COOKIE, csrf, max_age=max_age, path="/", secure=secure,
                                httponly=False, samesite="lax")
