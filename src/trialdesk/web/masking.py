"""Every textual answer passes the caller's identifier mask
(:mod:`trialdesk.services.masking`) on its way out: JSON, pages, CSV, calendars and error
messages alike."""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from trialdesk.services.masking import Mask, mask_for

TEXTUAL = (b"application/json", b"text/", b"application/fhir+json", b"application/xml")


class MaskIdentifiers:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path", "").startswith("/static/"):
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        ctx = scope["app"].state.ctx
        mask: Mask | None = None
        start: Message | None = None
        chunks: list[bytes] = []

        async def masked_send(message: Message) -> None:
            nonlocal mask, start
            if message["type"] == "http.response.start":
                kind = MutableHeaders(raw=message["headers"]).get("content-type", "").encode()
                if kind.startswith(TEXTUAL):
                    mask = mask_for(ctx, ctx.auth.principal(request))
                if not mask:
                    await send(message)
                    return
                start = message
                return
            if start is None or message["type"] != "http.response.body":
                await send(message)
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body", False):
                return
            assert mask is not None
            try:
                body = mask.text(b"".join(chunks).decode("utf-8")).encode("utf-8")
            except UnicodeDecodeError:
                body = b"".join(chunks)
            headers = MutableHeaders(raw=list(start["headers"]))
            headers["content-length"] = str(len(body))
            await send({**start, "headers": headers.raw})
            await send({"type": "http.response.body", "body": body, "more_body": False})

        await self.app(scope, receive, masked_send)
