"""Log-in sessions and CSRF for the web application. Passwords, lock-out and permissions
are the service layer's (:mod:`trialdesk.services.accounts`), shared with the command line.

* A session is a random token in an HttpOnly, Secure, SameSite=Lax cookie; the database
  keeps only its SHA-256, so log-out (or expiry) ends it for good. It ends after
  ``idle_minutes`` without a request or ``session_hours`` after log-in, whichever is first.
* CSRF: every form and every unsafe API call carries a token equal to the ``td_csrf``
  cookie, which is signed (itsdangerous) and bound to the session (signed double-submit).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import timedelta
from typing import Any

from fastapi import Request
from itsdangerous import BadSignature, URLSafeTimedSerializer

from trialdesk.errors import AccessError
from trialdesk.services.accounts import Accounts, Principal
from trialdesk.store import Store
from trialdesk.store.records import UserRecord
from trialdesk.web.settings import Settings

SESSION_COOKIE = "td_session"
CSRF_COOKIE = "td_csrf"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Auth:
    """Log-in, sessions and CSRF tokens for one application."""

    def __init__(self, store: Store, settings: Settings) -> None:
        self.store = store
        self.settings = settings
        self.accounts = Accounts(store, settings.lockout_threshold, settings.lockout_minutes)
        self.signer = URLSafeTimedSerializer(settings.secret_key, salt="trialdesk.csrf")

    @property
    def _idle(self) -> timedelta:
        return timedelta(minutes=self.settings.idle_minutes)

    @property
    def _lifetime(self) -> timedelta:
        return timedelta(hours=self.settings.session_hours)

    # -------------------------------------------------------------- log-in

    def authenticate(self, request: Request, username: str, password: str) -> UserRecord:
        """The user, if the password is right and the caller's address is not throttled
        (every failure is audited with the address and the user agent)."""
        return self.accounts.authenticate(
            username, password, address=request.client.host if request.client else "",
            user_agent=request.headers.get("user-agent", ""))

    def start_session(self, user: UserRecord) -> str:
        token = secrets.token_urlsafe(32)
        self.store.create_session(token_hash(token), user.id, self.store.now() + min(
            self._idle, self._lifetime))
        return token

    def principal(self, request: Request) -> Principal:
        cached = getattr(request.state, "principal", None)
        if isinstance(cached, Principal):
            return cached
        token = request.cookies.get(SESSION_COOKIE)
        principal = Principal(None)
        if token:
            hashed = token_hash(token)
            found = self.store.session_with_memberships(hashed, idle=self._idle,
                                                        lifetime=self._lifetime)
            if found is not None:
                principal = Principal(found[0], tuple(found[1]), hashed)
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
