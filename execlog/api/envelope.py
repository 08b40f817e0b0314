"""The contract's JSON envelope, and the one place where exceptions become HTTP errors:
``{"success": false, "data": null, "message": "<what was wrong>"}`` with a 4xx/5xx status."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from execlog.errors import ExeclogError
from execlog.protocol import encode_json, quote_value
from execlog.storage.database import DATABASE_UNAVAILABLE_ERRORS, describe_database_error

__all__ = ["error_response", "install_error_handlers", "success_response"]

logger = logging.getLogger(__name__)


def success_response(data: Any, status_code: int = 200) -> Response:
    body = encode_json({"success": True, "data": data, "message": None})
    return Response(body, status_code=status_code, media_type="application/json")


def error_response(status_code: int, message: str) -> Response:
    body = encode_json({"success": False, "data": None, "message": message})
    return Response(body, status_code=status_code, media_type="application/json")


def _describe_validation_error(exc: RequestValidationError) -> str:
    parts = []
    for error in exc.errors():
        location = [str(part) for part in error.get("loc", ()) if part != "body"]
        where = " ".join(location) if location else "request body"
        given = error.get("input")
        # At most QUOTED_VALUE_MAX_CHARS of the value: a 50 MB field was echoed whole.
        shown = (
            ""
            if isinstance(given, dict | list) or given is None
            else f" (got {quote_value(given)})"
        )
        parts.append(f"{where}: {error.get('msg', 'invalid')}{shown}")
    return "invalid request: " + "; ".join(parts)


def install_error_handlers(app: FastAPI) -> None:
    async def on_execlog_error(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ExeclogError)
        return error_response(exc.status, str(exc))

    async def on_validation_error(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        return error_response(400, _describe_validation_error(exc))

    async def on_http_error(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        return error_response(exc.status_code, str(exc.detail))

    async def on_database_unavailable(request: Request, exc: Exception) -> Response:
        # Locked, busy, unreachable, out of space or out of pooled connections: the request
        # may succeed later, so 503 with the driver's reason (never SQL or parameters).
        text = describe_database_error(exc)
        logger.warning("database unavailable on %s %s: %s", request.method, request.url.path, text)
        return error_response(503, f"database unavailable: {text}; try again later")

    async def on_unexpected_error(request: Request, exc: Exception) -> Response:
        logger.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
        return error_response(500, "internal server error")

    app.add_exception_handler(ExeclogError, on_execlog_error)
    for error in DATABASE_UNAVAILABLE_ERRORS:  # DatabaseUnavailableError too: more specific
        app.add_exception_handler(error, on_database_unavailable)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(Exception, on_unexpected_error)
