"""The one place that turns errors into OpenAI-shaped HTTP responses.

``GatewayError`` subclasses carry their own status, type and code; FastAPI's
validation errors (wrong types, malformed JSON) become 400 ``invalid_request_error``
naming the offending field (code ``invalid_type``, ``invalid_value``, ...); Starlette's
404/405/413 keep their status with the same body shape, a 405 with an ``Allow`` naming
every method of the path; anything else is a 500 ``server_error`` that never leaks internals.
The HTTP server writes its own refusals, made before any app runs, with
``raw_error_response``.
"""

from __future__ import annotations

import json
import logging
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

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


def raw_error_response(exc: GatewayError) -> bytes:
    """``exc`` as a whole HTTP/1.1 response that closes the connection."""
    body = json.dumps(body_for(exc)).encode()
    head = [
        f"HTTP/1.1 {exc.status_code} {HTTPStatus(exc.status_code).phrase}",
        "content-type: application/json",
        f"content-length: {len(body)}",
        "connection: close",
    ]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def _param(loc: tuple[Any, ...]) -> str | None:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or None


def _validation_code(error_type: str) -> str:
    """OpenAI's code for one of pydantic's error types."""
    if error_type == "missing":
        return "missing_required_parameter"
    if error_type == "extra_forbidden":
        return "unknown_parameter"
    if error_type.endswith(("_type", "_parsing")):
        return "invalid_type"
    return "invalid_value"


def validation_error_response(exc: RequestValidationError) -> JSONResponse:
    errors = exc.errors()
    first = errors[0] if errors else {}
    loc = tuple(first.get("loc", ()))
    param = _param(loc)
    if first.get("type") == "json_invalid":
        message, code = "The request body is not valid JSON.", "invalid_json"
    else:
        where = f" at '{param}'" if param else ""
        message = f"Invalid request{where}: {first.get('msg', 'invalid value')}."
        code = _validation_code(str(first.get("type", "")))
    body = error_body(message, error_type="invalid_request_error", param=param, code=code)
    return JSONResponse(body, status_code=400)


def allowed_methods(request: Request) -> str:
    """Every method some route at the request's path answers: the ``Allow`` of its 405."""
    methods: set[str] = set()
    for route in request.app.router.routes:
        match, _ = route.matches(request.scope)
        if match is not Match.NONE:
            methods.update(getattr(route, "methods", None) or ())
    return ", ".join(sorted(methods))


def http_error_response(exc: StarletteHTTPException, *, allow: str | None = None) -> JSONResponse:
    """``exc`` as an OpenAI error; a 405 says in ``Allow`` what the path answers."""
    error_type, code = _HTTP_ERROR_TYPES.get(
        exc.status_code,
        ("invalid_request_error", None) if exc.status_code < 500 else ("server_error", None),
    )
    body = error_body(str(exc.detail), error_type=error_type, code=code)
    headers = {k: v for k, v in (exc.headers or {}).items() if k.lower() != "allow"}
    if allow is not None:
        headers["allow"] = allow
    return JSONResponse(body, status_code=exc.status_code, headers=headers)


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

    async def on_http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        allow = allowed_methods(request) if exc.status_code == 405 else None
        return http_error_response(exc, allow=allow)

    async def on_unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", exc_info=exc)
        return JSONResponse(error_body("Internal server error."), status_code=500)

    app.add_exception_handler(GatewayError, on_gateway_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(Exception, on_unexpected)
