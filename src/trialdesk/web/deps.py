"""What every route needs from a request: the application's services and settings, the
caller, and the CSRF check."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request

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
