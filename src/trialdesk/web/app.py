"""The web application: ``create_app(settings)`` gives a FastAPI app (ASGI).

>>> from trialdesk.web.settings import Settings
>>> app = create_app(Settings(database_url="sqlite:///:memory:", secret_key="k" * 32))
>>> app.openapi()["info"]["title"]
'trialdesk'
"""

from __future__ import annotations

import base64
import hashlib
import re
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from pydantic import ValidationError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

import trialdesk
from trialdesk.services.catalogue import Catalogue
from trialdesk.store import Store
from trialdesk.store.base import counter_read_once
from trialdesk.web import (
    api,
    biomarker_api,
    biomarker_pages,
    clinical_api,
    clinical_pages,
    dose_pages,
    errors,
    form_pages,
    lab_api,
    lab_pages,
    pages,
    product_api,
    product_pages,
    query_api,
    query_pages,
    registry_pages,
    response_pages,
    safety_pages,
)
from trialdesk.web.deps import WebContext
from trialdesk.web.idempotency import Idempotency
from trialdesk.web.masking import MaskIdentifiers
from trialdesk.web.security import Auth
from trialdesk.web.settings import Settings

STATIC = Path(__file__).resolve().parent / "static"

CSP = ("default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
       "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'")
HEADERS = [(b"x-content-type-options", b"nosniff"), (b"x-frame-options", b"DENY"),
           (b"referrer-policy", b"same-origin")]


HSTS = (b"strict-transport-security", b"max-age=31536000")


def docs_csp(app: FastAPI) -> str:
    """The policy of the API docs page: Swagger UI from its CDN, and the page's own inline
    script by its hash (CSP Level 2 hash source), nothing else."""
    from fastapi.openapi.docs import get_swagger_ui_html

    html = bytes(get_swagger_ui_html(
        openapi_url=app.openapi_url or "", title=f"{app.title} - Swagger UI",
        init_oauth=app.swagger_ui_init_oauth,
        swagger_ui_parameters=app.swagger_ui_parameters).body).decode()
    hashes = " ".join(
        "'sha256-" + base64.b64encode(hashlib.sha256(script.encode()).digest()).decode() + "'"
        for script in re.findall(r"<script>(.*?)</script>", html, re.S))
    return (f"default-src 'none'; script-src {SWAGGER_CDN} {hashes}; style-src {SWAGGER_CDN}; "
            "img-src 'self' data: https://fastapi.tiangolo.com; connect-src 'self'; "
            "base-uri 'none'; frame-ancestors 'none'; form-action 'none'")


SWAGGER_CDN = "https://cdn.jsdelivr.net"


class Guard:
    """Security headers on every answer (a CSP, no caching outside /static, HSTS over
    TLS), and a limit on the size of every request body."""

    def __init__(self, app: ASGIApp, max_body: int, docs_policy: str = "") -> None:
        self.app = app
        self.max_body = max_body
        self.docs_policy = docs_policy.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        docs = path in ("/api/docs", "/api/redoc")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += HEADERS
                headers.append((b"content-security-policy",
                                self.docs_policy if docs else CSP.encode()))
                if not path.startswith("/static/") and not any(
                        k.lower() == b"cache-control" for k, _ in headers):
                    headers.append((b"cache-control", b"no-store"))  # patient data: no copies
                if scope.get("scheme") == "https":
                    headers.append(HSTS)
                message["headers"] = headers
            await send(message)

        length = dict(scope.get("headers", [])).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_body:
            await self._too_large(scope, send_with_headers)
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body:
                    raise _TooLarge()
            return message

        try:
            await self.app(scope, limited_receive, send_with_headers)
        except _TooLarge:
            await self._too_large(scope, send_with_headers)

    async def _too_large(self, scope: Scope, send: Send) -> None:
        body = errors.error_body(413, f"the request is larger than {self.max_body} bytes")
        response = JSONResponse(body, status_code=413)
        await response(scope, _no_body, send)


class OneCounterRead:
    """Each request reads the database's write counter once (what it reads is kept per
    process until the next write, keyed by that counter; see
    :func:`trialdesk.store.base.counter_read_once`)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        with counter_read_once():
            await self.app(scope, receive, send)


class _TooLarge(Exception):
    pass


async def _no_body() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


def create_app(settings: Settings, store: Store | None = None) -> FastAPI:
    """The application on ``settings`` (or on an already open ``store``)."""
    store = store or Store.open(settings.database_url)
    app = FastAPI(title="trialdesk", version=trialdesk.__version__,
                  description="Run interventional clinical trials from a machine-readable "
                              "protocol: registry, screening, patients, audit trail.",
                  openapi_url="/api/openapi.json", docs_url="/api/docs", redoc_url=None,
                  swagger_ui_oauth2_redirect_url=None)
    auth = Auth(store, settings)
    app.state.ctx = WebContext(store, Catalogue(store), auth.accounts, settings, auth)
    errors.install(app, pages.render_error)

    @app.exception_handler(ValidationError)
    async def invalid_model(request: Request, exc: ValidationError) -> Any:
        body = errors.error_body(422, "invalid input", [
            {"field": errors.field_path(tuple(e["loc"])), "reason": e["msg"]}
            for e in exc.errors()])
        body["error"] = f"{body['errors'][0]['field']}: {body['errors'][0]['reason']}"
        if errors.wants_html(request):
            return pages.render_error(request, body)
        return JSONResponse(body, status_code=422)

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, Any]:
        return {"ok": True, "database": store.backend}

    app.include_router(api.router, responses=errors.API_ERRORS)
    app.include_router(clinical_api.router, responses=errors.API_ERRORS)
    app.include_router(pages.router)
    app.include_router(clinical_pages.router)
    app.include_router(safety_pages.api_router, responses=errors.API_ERRORS)
    app.include_router(safety_pages.router)
    app.include_router(form_pages.api_router, responses=errors.API_ERRORS)
    app.include_router(form_pages.router)
    app.include_router(product_api.router, responses=errors.API_ERRORS)
    app.include_router(product_pages.router)
    app.include_router(lab_api.router, responses=errors.API_ERRORS)
    app.include_router(lab_pages.router)
    app.include_router(query_api.router, responses=errors.API_ERRORS)
    app.include_router(query_pages.router)
    app.include_router(biomarker_api.router, responses=errors.API_ERRORS)
    app.include_router(biomarker_pages.router)
    app.include_router(response_pages.api_router, responses=errors.API_ERRORS)
    app.include_router(response_pages.router)
    app.include_router(dose_pages.api_router, responses=errors.API_ERRORS)
    app.include_router(dose_pages.router)
    app.include_router(registry_pages.router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    # The request-size limit leaves room for form fields around the largest upload.
    app.add_middleware(Idempotency, store=store)  # innermost: keeps the unmasked first answer
    app.add_middleware(MaskIdentifiers)
    app.add_middleware(OneCounterRead)
    app.add_middleware(Guard, max_body=settings.max_upload_bytes + 64 * 1024,
                       docs_policy=docs_csp(app))
    return app


def app_from_environment() -> FastAPI:
    """One server process of ``trialdesk serve --workers N``: the application on the
    settings the command left in :data:`~trialdesk.web.settings.SERVE_ENV`. The secret key
    is the data directory's (or ``TRIALDESK_SECRET_KEY``), the same in every process, so a
    session or form started in one process is honoured by the others; the schema was
    brought up to date by the command before the processes started."""
    import json
    import os

    from trialdesk.web.settings import SERVE_ENV

    given = json.loads(os.environ[SERVE_ENV])
    settings = Settings.for_data_dir(
        Path(given["data_dir"]), database_url=given["database_url"],
        secret_key=os.environ.get("TRIALDESK_SECRET_KEY"), idle_minutes=given["idle_minutes"],
        facility=given["facility"])
    store = Store.open(settings.database_url, migrate=False, synchronous=given["synchronous"])
    application = create_app(settings, store)
    warm_up(application)
    return application


#: The collector's thresholds once the process is warm (Python's default is (700, 10, 10)):
#: a page allocates tens of thousands of short-lived objects (template output, row objects,
#: pydantic models), which at the default start a young-generation collection every few
#: hundred allocations and an older-generation one every few pages, each walking objects
#: that live for the whole process. Reference counting frees almost all of them anyway.
GC_THRESHOLDS = (10000, 20, 20)


def warm_up(app: FastAPI) -> None:
    """What a server process does before it takes requests: compile the stored protocols,
    the page templates and the CTCAE v5.0 term list (otherwise its first pages wait seconds
    for them, and every request queued behind those pages too), then move everything
    built so far out of the collector's sight (``gc.freeze``) and collect less often
    (:data:`GC_THRESHOLDS`): the objects that live as long as the process are then not
    walked again at every collection."""
    import gc

    from trialdesk.services import safety_forms

    app.state.ctx.catalogue.trials()
    for name in pages._env.list_templates(extensions=["html"]):
        pages._env.get_template(name)
    safety_forms.all_terms_view()
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
