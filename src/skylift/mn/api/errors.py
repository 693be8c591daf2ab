"""One place that turns errors into JSON {error, what, why, next} with the right HTTP status."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException

from skylift import errors
from skylift.mn.gate import RETRY_AFTER

log = logging.getLogger("skylift.mn")

# most specific first
STATUS = [
    (errors.NotAuthorized, 401),
    (errors.NoSuchResource, 404),
    (errors.NoSuchVm, 404),
    (errors.UsageError, 400),
    (errors.UpgradeInProgress, 503),
    (errors.Refused, 409),  # HostReconnecting, QemuMismatch, dependents, ...
    (errors.AgentError, 502),
    (errors.TransportError, 502),
]


def status_of(exc: errors.SkyliftError) -> int:
    """The HTTP status of a skylift error."""
    for cls, code in STATUS:
        if isinstance(exc, cls):
            return code
    return 500


def respond(exc: errors.SkyliftError) -> JSONResponse:
    code = status_of(exc)
    headers = {"Retry-After": RETRY_AFTER} if code == 503 else None
    return JSONResponse(exc.to_dict(), status_code=code, headers=headers)


def install(app: FastAPI, db_display: str) -> None:
    """Register the handlers on the app."""

    @app.exception_handler(errors.SkyliftError)
    async def skylift_error(request: Request, exc: errors.SkyliftError) -> JSONResponse:
        return respond(exc)

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}"
                             for e in exc.errors()[:5])
        return respond(errors.UsageError(f"bad request to {request.url.path}", why=problems,
                                         next="see /openapi.json for the expected body"))

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        if exc.status_code == 404:
            err = errors.NoSuchResource(f"nothing at {request.url.path}",
                                        next="see /openapi.json for the API")
        else:
            err = errors.SkyliftError(str(exc.detail))
        return JSONResponse(err.to_dict(), status_code=exc.status_code,
                            headers=getattr(exc, "headers", None))

    @app.exception_handler(SQLAlchemyError)
    async def db_error(request: Request, exc: SQLAlchemyError) -> JSONResponse:
        # the driver's message can hold SQL and values, but never the password (not in URLs
        # we render); keep only its first line
        reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
        log.error("database error on %s %s: %s", request.method, request.url.path, reason)
        err = errors.DatabaseError(f"the database failed on {request.method} {request.url.path}",
                                   why=reason, next=f"check the database {db_display}")
        return JSONResponse(err.to_dict(), status_code=500)
