"""What every route needs from a request: the application's services and settings, the
caller, the CSRF check, and a submitted form's text fields."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from trialdesk.services.accounts import Principal
from trialdesk.services.context import Services
from trialdesk.web.security import Auth
from trialdesk.web.settings import Settings


@dataclass(frozen=True)
class WebContext(Services):
    """The services with the web application's settings and sessions."""

    settings: Settings
    auth: Auth


def context(request: Request) -> WebContext:
    ctx = request.app.state.ctx
    assert isinstance(ctx, WebContext)
    return ctx


def principal(request: Request) -> Principal:
    return context(request).auth.principal(request)


async def csrf(request: Request) -> None:
    await context(request).auth.check_csrf(request)


async def submitted_text(request: Request) -> dict[str, str]:
    """The submitted form's text fields (files left out)."""
    limit = context(request).settings.max_upload_bytes
    form = await request.form(max_part_size=limit)
    return {k: v for k, v in form.items() if isinstance(v, str)}


#: A form's text fields, read before the page's function runs: the function is a plain
#: ``def`` (run in the thread pool), so its database work never holds up the event loop.
Submitted = Annotated[dict[str, str], Depends(submitted_text)]
