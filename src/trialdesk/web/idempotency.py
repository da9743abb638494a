"""``Idempotency-Key`` on every creating API request.

A client that may lose the answer to a ``POST`` (a timeout, a dropped connection) sends an
``Idempotency-Key`` header, a value unique to that request. Retried with the same key by the
same user:

* and the same request (method, path, query and body) already answered with success — the
  first answer is returned again, and nothing is created twice;
* while the first is still running — it waits for the first answer (up to 10 s; after that,
  or when the first answer was lost in a crash, 409: try again);
* with another request — 409: a key is used for one request only.

An answer that is not a success changed nothing, so its key is released and the request can
be made again. Keys are per user; the answer is kept in the database (``idempotency_keys``)
with the request's digest, the key itself only as a SHA-256.
"""

from __future__ import annotations

import asyncio
import hashlib

from starlette.requests import HTTPConnection
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from trialdesk.store import Store
from trialdesk.web import errors
from trialdesk.web.security import SESSION_COOKIE, token_hash

HEADER = b"idempotency-key"
WAIT_STEPS, WAIT_STEP_S = 100, 0.1  # a retry waits up to 10 s for the first request's answer
EXEMPT = ("/api/login", "/api/logout")


def _conflict(reason: str) -> JSONResponse:
    body = errors.error_body(409, reason, [{"field": "$.header.Idempotency-Key",
                                            "reason": reason}])
    return JSONResponse(body, status_code=409)


class Idempotency:
    """ASGI middleware: replay the first answer of a retried creating request."""

    def __init__(self, app: ASGIApp, store: Store) -> None:
        self.app = app
        self.store = store

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        key = dict(scope.get("headers") or ()).get(HEADER) if scope["type"] == "http" else None
        path = str(scope.get("path", ""))
        if (key is None or scope.get("method") != "POST" or not path.startswith("/api/")
                or path in EXEMPT):
            await self.app(scope, receive, send)
            return
        token = HTTPConnection(scope).cookies.get(SESSION_COOKIE)
        user = self.store.session_user(token_hash(token)) if token else None
        if user is None:  # the route answers 401 (or the CSRF check 403) as usual
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        more = True
        while more:
            message = await receive()
            chunks.append(message.get("body", b""))
            more = bool(message.get("more_body"))
        body = b"".join(chunks)
        request = hashlib.sha256(b"\0".join((
            b"POST", path.encode(), bytes(scope.get("query_string") or b""), body))).hexdigest()
        key_digest = hashlib.sha256(key).hexdigest()
        state, status, content_type, kept = self.store.claim_idempotency(user.id, key_digest,
                                                                         request)
        for _ in range(WAIT_STEPS):  # a concurrent retry: wait for the first answer
            if state != "running":
                break
            await asyncio.sleep(WAIT_STEP_S)
            state, status, content_type, kept = self.store.claim_idempotency(
                user.id, key_digest, request)
        if state == "other":
            await _conflict("this Idempotency-Key was used for another request; use a new key "
                            "for a new request")(scope, receive, send)
            return
        if state == "running":
            await _conflict("a request with this Idempotency-Key is running or its answer was "
                            "lost; try again in a moment")(scope, receive, send)
            return
        if state == "replay":
            await send({"type": "http.response.start", "status": status or 200,
                        "headers": [(b"content-type", (content_type or "application/json")
                                     .encode()), (b"idempotent-replay", b"true")]})
            await send({"type": "http.response.body", "body": kept or b""})
            return

        sent = False

        async def replay_body() -> Message:
            nonlocal sent
            if sent:
                return {"type": "http.disconnect"}
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        started: dict[str, object] = {}
        out: list[bytes] = []

        async def keep(message: Message) -> None:
            if message["type"] == "http.response.start":
                started["status"] = message["status"]
                started["content_type"] = dict(message.get("headers") or ()).get(
                    b"content-type", b"").decode("latin-1") or None
            elif message["type"] == "http.response.body":
                out.append(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, replay_body, keep)
        finally:
            code = int(started.get("status", 500))  # type: ignore[call-overload]
            success = 200 <= code < 300
            self.store.answer_idempotency(
                user.id, key_digest, code,
                str(started["content_type"]) if started.get("content_type") else None,
                b"".join(out) if success else None)
