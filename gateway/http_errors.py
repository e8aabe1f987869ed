"""The one place that turns errors into OpenAI-shaped HTTP responses.

``GatewayError`` subclasses carry their own status, type and code; FastAPI's
validation errors (wrong types, malformed JSON) become 400 ``invalid_request_error``
naming the offending field; Starlette's 404/405/413 keep their status with the same
body shape; anything else is a 500 ``server_error`` that never leaks internals.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from gateway.errors import GatewayError, body_for, error_body

log = logging.getLogger(__name__)

_HTTP_ERROR_TYPES = {
    401: ("authentication_error", "invalid_api_key"),
    403: ("permission_error", "permission_denied"),
    404: ("invalid_request_error", "not_found"),
    405: ("invalid_request_error", "method_not_allowed"),
    413: ("invalid_request_error", "payload_too_large"),
}


def gateway_error_response(exc: GatewayError) -> JSONResponse:
    return JSONResponse(body_for(exc), status_code=exc.status_code, headers=exc.headers)


def _param(loc: tuple[Any, ...]) -> str | None:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or None


def validation_error_response(exc: RequestValidationError) -> JSONResponse:
    errors = exc.errors()
    first = errors[0] if errors else {}
    loc = tuple(first.get("loc", ()))
    param = _param(loc)
    if first.get("type") == "json_invalid":
        message, code = "The request body is not valid JSON.", "invalid_json"
    else:
        where = f" at '{param}'" if param else ""
        message, code = f"Invalid request{where}: {first.get('msg', 'invalid value')}.", None
    body = error_body(message, error_type="invalid_request_error", param=param, code=code)
    return JSONResponse(body, status_code=400)


def http_error_response(exc: StarletteHTTPException) -> JSONResponse:
    error_type, code = _HTTP_ERROR_TYPES.get(
        exc.status_code,
        ("invalid_request_error", None) if exc.status_code < 500 else ("server_error", None),
    )
    body = error_body(str(exc.detail), error_type=error_type, code=code)
    return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)


def install_error_handlers(app: FastAPI) -> None:
    """Map the error tree, validation errors and Starlette's HTTP errors to OpenAI bodies."""

    async def on_gateway_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, GatewayError)
        if exc.status_code >= 500:
            log.warning("request failed: %s", exc.message)
        return gateway_error_response(exc)

    async def on_validation_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return validation_error_response(exc)

    async def on_http_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        return http_error_response(exc)

    async def on_unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", exc_info=exc)
        return JSONResponse(error_body("Internal server error."), status_code=500)

    app.add_exception_handler(GatewayError, on_gateway_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(Exception, on_unexpected)
