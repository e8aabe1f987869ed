"""The OpenAPI document as this gateway, with its settings, behaves.

FastAPI derives the document from the routes; ``install_openapi`` corrects what it cannot
know from them:

- validation errors are 400 OpenAI errors (``gateway.http_errors``), never FastAPI's 422;
  every operation may answer 400 to a request the HTTP server cannot parse (plain text,
  beside the JSON 400 a route documents);
- the generation bodies admit extra fields only as ``RequestLimits.unknown_fields`` does:
  under ``reject`` they list ``extra_params`` and forbid any other field;
- ``max_tokens``, ``max_completion_tokens`` and ``max_output_tokens`` (JSON bodies and the
  audio forms), ``n``, ``messages`` and ``input`` (Responses items, embedding and
  moderation inputs) carry
  the request limits as ``maximum`` and ``maxItems``;
- with quotas on, an operation that may answer 401 takes a Bearer key (``ApiKey``; the
  admin API's ``AdminKey``); with quotas off nothing authenticates, so there is no 401.

The document is built once, on its first request (after startup, which adds the admin API).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from fastapi import FastAPI

from gateway.settings import GatewaySettings, RequestLimits

GENERATION_BODIES = (
    "ChatCompletionRequest",
    "CompletionRequest",
    "EmbeddingRequest",
    "ModerationRequest",
    "ResponseRequest",
)
ADMIN_PREFIX = "/admin/"
_VALIDATION_SCHEMAS = ("HTTPValidationError", "ValidationError")
_BEARER = {"type": "http", "scheme": "bearer"}
#: Any operation's answer to a request the HTTP server cannot parse (a malformed
#: ``Content-Length``, say): a plain-text 400 from the server, before any route runs.
MALFORMED = "The HTTP request is malformed; the server refuses it before any route runs."


def install_openapi(app: FastAPI, settings: GatewaySettings) -> None:
    """Serve the document that matches ``settings`` at ``/openapi.json``."""
    build: Callable[[], dict[str, Any]] = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = matching_behaviour(build(), settings)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def matching_behaviour(document: dict[str, Any], settings: GatewaySettings) -> dict[str, Any]:
    """``document`` (FastAPI's) corrected in place for ``settings``; returned."""
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    for _, operation in _operations(document):
        operation.get("responses", {}).pop("422", None)
        _malformed(operation.setdefault("responses", {}))
        for media in operation.get("requestBody", {}).get("content", {}).values():
            _limit_tokens(media.get("schema", {}).get("properties", {}), settings.limits)
    for name in _VALIDATION_SCHEMAS:
        schemas.pop(name, None)
    for name in GENERATION_BODIES:
        if name in schemas:
            _limit_body(schemas[name], settings.limits, _input_items(name, settings.limits))
    _security(document, quotas=settings.quota.enabled)
    return document


def _malformed(responses: dict[str, Any]) -> None:
    """A 400 as the HTTP server writes it (plain text) beside any 400 the route documents."""
    refused = responses.setdefault("400", {"description": MALFORMED})
    if "content" in refused:
        refused["content"].setdefault("text/plain", {"schema": {"type": "string"}})
        refused["description"] = f"{refused.get('description', '')} {MALFORMED}".strip()


def _operations(document: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Each operation, with its path."""
    for path, path_item in document.get("paths", {}).items():
        for operation in path_item.values():
            yield path, operation


def _input_items(body: str, limits: RequestLimits) -> int:
    """The most items a body's ``input`` array may hold."""
    if body == "EmbeddingRequest":
        return limits.max_embedding_inputs
    if body == "ModerationRequest":
        return limits.max_moderation_inputs
    return limits.max_messages  # Responses input items


def _limit_body(schema: dict[str, Any], limits: RequestLimits, inputs: int) -> None:
    properties: dict[str, Any] = schema.setdefault("properties", {})
    _limit_tokens(properties, limits)
    _maximum(properties.get("n"), limits.max_n)
    if "messages" in properties:
        properties["messages"]["maxItems"] = limits.max_messages
    for branch in properties.get("input", {}).get("anyOf", []):
        tokens = branch.get("items", {}).get("type") == "integer"  # one input's token array
        if branch.get("type") == "array" and not tokens:
            branch["maxItems"] = inputs
    if limits.unknown_fields == "reject":
        for name in limits.extra_params:
            properties.setdefault(name, {"description": "Passed on to the engine (vLLM)."})
        schema["additionalProperties"] = False
    else:
        schema["additionalProperties"] = True


def _limit_tokens(properties: dict[str, Any], limits: RequestLimits) -> None:
    for name in ("max_tokens", "max_completion_tokens", "max_output_tokens"):
        _maximum(properties.get(name), limits.max_tokens)


def _maximum(prop: dict[str, Any] | None, bound: int) -> None:
    """Set ``maximum`` on the integer branch of ``int | None`` (or on a plain integer)."""
    if prop is None:
        return
    for branch in prop.get("anyOf", [prop]):
        if branch.get("type") == "integer":
            branch["maximum"] = bound


def _security(document: dict[str, Any], *, quotas: bool) -> None:
    authenticating = [(p, op) for p, op in _operations(document) if "401" in op["responses"]]
    if not quotas:
        for _, operation in authenticating:
            operation["responses"].pop("401")
        return
    schemes = document["components"].setdefault("securitySchemes", {})
    schemes["ApiKey"] = {**_BEARER, "description": "An API key: Authorization: Bearer <key>."}
    schemes["AdminKey"] = {**_BEARER, "description": "The admin key (the admin API only)."}
    for path, operation in authenticating:
        scheme = "AdminKey" if path.startswith(ADMIN_PREFIX) else "ApiKey"
        operation["security"] = [{scheme: []}]
