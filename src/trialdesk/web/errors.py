"""One error shape for every error, JSON for the API and a page for people.

``{"ok": false, "error": "...", "status": 422, "title": "Invalid input",
"errors": [{"field": "$.body.record.birth_date", "reason": "..."}]}`` — ``errors`` only
for validation errors. Domain errors map to HTTP statuses here and nowhere else; an
unexpected error is a 500 with no traceback in the answer.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from trialdesk.cellproduct.identifier import IdentifierError
from trialdesk.cellproduct.product import ProductError
from trialdesk.errors import (
    AccessError,
    ClinicalError,
    ConflictError,
    EnrolmentError,
    FactError,
    NotFoundError,
    OutcomeError,
    ProtocolError,
    ResponseError,
    SafetyError,
    ScheduleError,
    TrialdeskError,
)

log = logging.getLogger("trialdesk.web")

TITLES = {400: "Bad request", 401: "Log-in required", 403: "Forbidden", 404: "Not found",
          405: "Method not allowed", 409: "Conflict", 413: "Too large", 415: "Unsupported type",
          422: "Invalid input", 500: "Server error"}


# A request refused on its content (an impossible value, a consent signed by the wrong
# person, a dose record that does not fit its event, an impossible CTCAE grade, a cell
# product derived from the wrong parent or a mistyped product identifier…).
INVALID = (FactError, ProtocolError, ClinicalError, ScheduleError, EnrolmentError, SafetyError,
           ResponseError, OutcomeError, ProductError, IdentifierError)


class ErrorField(BaseModel):
    field: str
    reason: str


class ErrorOut(BaseModel):
    """The one error shape."""

    ok: bool = False
    error: str
    status: int
    title: str
    errors: list[ErrorField] | None = None


# The errors any API operation may answer, declared on every operation of the OpenAPI
# document (a fuzzer holds the document to it).
API_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorOut, "description": TITLES[status]}
    for status in (400, 401, 403, 404, 409, 413, 415, 422)}


def allowed_methods(request: Request) -> list[str]:
    """Every method some route answers at the request's path (for a 405's ``Allow``)."""
    path = request.url.path
    found: set[str] = set()
    pending = list(request.app.routes)
    while pending:
        route = pending.pop()
        inner = getattr(route, "original_router", None)  # an included router
        if inner is not None:
            pending += list(inner.routes)
            continue
        regex = getattr(route, "path_regex", None)
        if regex is not None and regex.match(path) and getattr(route, "methods", None):
            found.update(route.methods)
    return sorted(found)


def status_of(exc: TrialdeskError) -> int:
    if isinstance(exc, AccessError):
        return exc.status
    if isinstance(exc, NotFoundError):
        return 404
    if isinstance(exc, ConflictError):
        return 409
    if isinstance(exc, INVALID):
        return 422
    return 400


def error_body(status: int, message: str, errors: list[dict[str, str]] | None = None
               ) -> dict[str, Any]:
    body: dict[str, Any] = {"ok": False, "error": message, "status": status,
                            "title": TITLES.get(status, "Error")}
    if errors is not None:
        body["errors"] = errors
    return body


def field_path(loc: tuple[Any, ...]) -> str:
    """A pydantic location as a JSON path: ``("body", "record", 0)`` → ``$.body.record[0]``."""
    out = "$"
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif out == "$.header":  # header names are capitalised: Idempotency-Key
            out += f".{part}"
        elif isinstance(part, str) and (part[:1].isupper() or "[" in part):
            continue  # union member or validator names are not part of the path
        else:
            out += f".{part}"
    return out


def validation_errors(exc: RequestValidationError) -> list[dict[str, str]]:
    out = []
    for err in exc.errors():
        reason = {"missing": "required field is missing",
                  "extra_forbidden": "unknown field"}.get(
            err.get("type", ""), str(err.get("msg", "invalid")).removeprefix("Value error, "))
        out.append({"field": field_path(tuple(err.get("loc", ()))), "reason": reason})
    return out


def wants_html(request: Request) -> bool:
    return not request.url.path.startswith("/api") and "text/html" in request.headers.get(
        "accept", "")


def install(app: FastAPI, render_error: Any) -> None:
    """Register the handlers; ``render_error(request, body)`` makes the HTML page."""

    def respond(request: Request, body: dict[str, Any], headers: dict[str, str] | None = None
                ) -> Response:
        if wants_html(request):
            response: Response = render_error(request, body)
        else:
            response = JSONResponse(body, status_code=body["status"])
        for k, v in (headers or {}).items():
            response.headers[k] = v
        return response

    @app.exception_handler(TrialdeskError)
    async def domain(request: Request, exc: TrialdeskError) -> Response:
        status = status_of(exc)
        errors = [{"field": exc.where, "reason": exc.reason}] if exc.where and status == 422 \
            else None
        return respond(request, error_body(status, str(exc), errors))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        errors = validation_errors(exc)
        first = errors[0] if errors else {"field": "$", "reason": "invalid"}
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        return respond(request, error_body(422, f"{first['field']}: {first['reason']}{more}",
                                           errors))

    @app.exception_handler(StarletteHTTPException)
    async def http(request: Request, exc: StarletteHTTPException) -> Response:
        message = str(exc.detail) if exc.detail else TITLES.get(exc.status_code, "Error")
        headers = dict(exc.headers or {})
        if exc.status_code == 405:  # all the path's methods, not one route's
            headers["Allow"] = ", ".join(allowed_methods(request))
        return respond(request, error_body(exc.status_code, message), headers)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return respond(request, error_body(500, "an unexpected error occurred; it has been logged"))
