"""One place that turns errors into JSON {error, what, why, next} with the right HTTP status.

What a caller reads never holds a traceback, a database driver's message (it can name the
database's user, host and schema, and echo values), or the database's address: those go to
the MN's log, under an error id the answer names. A bad value the database refused is a 400
(DataError) or a 409 (IntegrityError) naming the column when the driver says which; anything
unforeseen is a JSON 500 that leaves the connection open for the caller's next request.
"""

from __future__ import annotations

import json
import logging
import re
import uuid

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError, IntegrityError, SQLAlchemyError
from starlette.exceptions import HTTPException

from skylift import errors
from skylift.mn.gate import RETRY_AFTER

log = logging.getLogger("skylift.mn")

# most specific first
STATUS = [
    (errors.NotAuthorized, 401),
    (errors.Forbidden, 403),
    (errors.TooManyAttempts, 429),
    (errors.NoSuchResource, 404),
    (errors.NoSuchVm, 404),
    (errors.UsageError, 400),
    (errors.UpgradeInProgress, 503),
    (errors.QuorumLost, 503),
    (errors.Refused, 409),  # HostReconnecting, QemuMismatch, dependents, ...
    (errors.AgentError, 502),
    (errors.TransportError, 502),
]


class InternalError(errors.SkyliftError):
    """The MN failed in a way it did not foresee (a bug); its log has the details."""


class RequestTooLarge(errors.UsageError):
    """The request's body is larger than the MN takes."""


class BadValue(errors.UsageError):
    """The database refused a value: too long, out of range, or not valid for its column."""


class Conflict(errors.Refused):
    """The database refused a change: a duplicate, or a reference to a row that is not there."""


def status_of(exc: errors.SkyliftError) -> int:
    """The HTTP status of a skylift error."""
    if isinstance(exc, RequestTooLarge):
        return 413
    for cls, code in STATUS:
        if isinstance(exc, cls):
            return code
    return 500


def respond(exc: errors.SkyliftError) -> JSONResponse:
    code = status_of(exc)
    headers = {"Retry-After": RETRY_AFTER} if code == 503 else None
    return JSONResponse(exc.to_dict(), status_code=code, headers=headers)


def error_id() -> str:
    """A short id that ties an answer to its lines in the MN's log."""
    return uuid.uuid4().hex[:12]


def internal_error(method: str, path: str, ref: str) -> InternalError:
    return InternalError(f"the management node failed on {method} {path}",
                         why=f"an unexpected error; the MN's log has it under error id {ref}",
                         next="retry; if it fails again, report it with the MN's log "
                              f"(grep {ref})")


# Column names as drivers quote them: MariaDB ('x', `db`.`t`.`x`, key 't.x'), PostgreSQL
# ("x", Key (x)=...), SQLite (t.x). Only an identifier is ever taken from the message.
_IDENT = r"[A-Za-z_][A-Za-z0-9_]{0,63}"
_COLUMN = [re.compile(p) for p in (
    rf"for column (?:`{_IDENT}`\.)*[`']({_IDENT})[`']",
    rf"[Cc]olumn '({_IDENT})' cannot be null",
    rf"for key '(?:{_IDENT}\.)?({_IDENT})'",
    rf'in column "({_IDENT})"',
    rf"Key \(({_IDENT})\)=",
    rf"constraint failed: {_IDENT}\.({_IDENT})",
)]


def column_named(exc: SQLAlchemyError) -> str | None:
    """The column a driver's message names, if it names one (an identifier, nothing else)."""
    message = str(getattr(exc, "orig", None) or "")
    for pattern in _COLUMN:
        found = pattern.search(message)
        if found and found.group(1).upper() != "PRIMARY":
            return found.group(1)
    return None


def database_error(exc: SQLAlchemyError, method: str, path: str, ref: str) -> errors.SkyliftError:
    """What the caller reads for a database error: the column at most, never the driver text."""
    column = column_named(exc)
    field = f" '{column}'" if column else ""
    if isinstance(exc, DataError):
        return BadValue(f"the database refused a value of{field or ' the request'} on "
                        f"{method} {path}",
                        why=f"the value of{field or ' a field'} is too long, out of range or "
                            "not valid for its column",
                        next="send a shorter or valid value (/openapi.json has the limits)")
    if isinstance(exc, IntegrityError):
        return Conflict(f"the database refused the change on {method} {path}"
                        + (f" because of{field}" if field else ""),
                        why=f"{'the value of' + field if field else 'a value'} duplicates a "
                            "row's, is missing, or names a row that does not exist or is "
                            "still used",
                        next="check the values and the rows they name (GET them), then retry")
    return errors.DatabaseError(f"the database failed on {method} {path}",
                                why=f"{type(exc).__name__}; the MN's log has the database's "
                                    f"message under error id {ref}",
                                next="check that the database is up and reachable from the "
                                     "management node, then retry")


class LastResortMiddleware:
    """ASGI middleware: an exception no handler took becomes a JSON 500 (logged with its
    traceback under an error id). It is answered, not raised on, so the server keeps the
    connection open for the next request; only a response already begun is cut short."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = False

        async def tracking_send(message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            if started:
                raise  # half an answer went out: only closing the connection ends it
            ref = error_id()
            method, path = scope["method"], scope["path"]
            if isinstance(exc, HTTPException):
                status, err = exc.status_code, getattr(exc, "error", None) or \
                    errors.SkyliftError(str(exc.detail))
            else:
                log.exception("unexpected error %s on %s %s", ref, method, path)
                status, err = 500, internal_error(method, path, ref)
            body = json.dumps(err.to_dict()).encode()
            await send({"type": "http.response.start", "status": status, "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": body})


def install(app: FastAPI, db_display: str) -> None:
    """Register the handlers on the app, and the last-resort middleware (the innermost: call
    this before adding any other middleware). db_display is for the log only."""

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
        err = getattr(exc, "error", None)
        if err is None and exc.status_code == 404:
            err = errors.NoSuchResource(f"nothing at {request.url.path}",
                                        next="see /openapi.json for the API")
        elif err is None and exc.status_code == 400:
            err = errors.UsageError(str(exc.detail), next="see /openapi.json for the API")
        elif err is None:
            err = errors.SkyliftError(str(exc.detail))
        return JSONResponse(err.to_dict(), status_code=exc.status_code,
                            headers=getattr(exc, "headers", None))

    @app.exception_handler(SQLAlchemyError)
    async def db_error(request: Request, exc: SQLAlchemyError) -> JSONResponse:
        # the driver's message can name the database's user, host and schema and echo
        # values: the log has it, the caller gets the column at most
        ref = error_id()
        reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
        log.error("database error %s on %s %s (%s): %s: %s", ref, request.method,
                  request.url.path, db_display, type(exc).__name__, reason)
        err = database_error(exc, request.method, request.url.path, ref)
        return JSONResponse(err.to_dict(), status_code=status_of(err))

    app.add_middleware(LastResortMiddleware)
