"""The OpenAPI document says what the gateway does: errors, extra fields, limits, ``Allow``.

The fuzz (``test_openapi_fuzz``) checks the whole surface; these pin each rule in a second.
"""

from __future__ import annotations

import socket
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from gateway.app import create_app
from gateway.quotas.admin import LimitsBody
from tests.gateway.conftest import MAX_MESSAGES, gateway_settings

USER = {"role": "user", "content": "hi"}


def document(**overrides: Any) -> dict[str, Any]:
    app = create_app(gateway_settings("http://127.0.0.1:9", **overrides))
    found: dict[str, Any] = app.openapi()
    return found


def operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(p, m, op) for p, item in doc["paths"].items() for m, op in item.items()]


def test_validation_errors_are_documented_as_400_not_422() -> None:
    doc = document()
    for path, method, operation in operations(doc):
        assert "422" not in operation["responses"], (method, path)
    assert "HTTPValidationError" not in doc["components"]["schemas"]
    chat = doc["paths"]["/v1/chat/completions"]["post"]["responses"]
    assert set(chat) >= {"200", "400", "404", "413", "429", "502", "503", "504"}
    assert chat["400"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ErrorResponse"
    }


def test_extra_fields_follow_the_unknown_fields_policy() -> None:
    rejecting = document()["components"]["schemas"]["ChatCompletionRequest"]
    assert rejecting["additionalProperties"] is False
    assert "top_k" in rejecting["properties"]  # vLLM's extra parameters stay accepted
    forwarding = document(limits={"unknown_fields": "forward"})["components"]["schemas"]
    assert forwarding["CompletionRequest"]["additionalProperties"] is True


def test_request_limits_are_bounds_in_the_document() -> None:
    schema = document()["components"]["schemas"]["ChatCompletionRequest"]["properties"]
    assert schema["messages"]["maxItems"] == MAX_MESSAGES
    integer = next(b for b in schema["max_completion_tokens"]["anyOf"] if b["type"] == "integer")
    assert integer["maximum"] == 1024


def test_authentication_is_declared_only_where_keys_are_checked() -> None:
    open_doc = document()
    assert all("401" not in op["responses"] for _, _, op in operations(open_doc))
    keyed = document(quota={"enabled": True})
    chat = keyed["paths"]["/v1/chat/completions"]["post"]
    assert chat["security"] == [{"ApiKey": []}]
    assert "security" not in keyed["paths"]["/healthz"]["get"]


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("PUT", "/v1/files", "GET, POST"),
        ("PATCH", "/v1/files/file-1", "DELETE, GET"),
        ("DELETE", "/v1/chat/completions", "POST"),
    ],
)
def test_405_allows_every_method_of_the_path(
    http: httpx.Client, method: str, path: str, allow: str
) -> None:
    response = http.request(method, path)
    assert response.status_code == 405
    assert response.headers["allow"] == allow
    assert response.json()["error"]["code"] == "method_not_allowed"


@pytest.mark.parametrize(
    ("field", "value", "code"),
    [
        ("max_tokens", True, "invalid_type"),
        ("temperature", "0.5", "invalid_type"),
        ("stream", 1, "invalid_type"),
        ("n", 0, "invalid_value"),
        ("max_completion_tokens", 5000, "max_tokens_too_large"),
    ],
)
def test_json_types_are_what_the_document_says(
    http: httpx.Client, field: str, value: Any, code: str
) -> None:
    body = {"model": "auto", "messages": [USER], "max_tokens": 10, field: value}
    response = http.post("/v1/chat/completions", json=body)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == code
    assert response.json()["error"]["param"] == field


def test_an_integral_float_is_an_integer(http: httpx.Client) -> None:
    body = {"model": "auto", "messages": [USER], "max_tokens": 10.0}
    assert http.post("/v1/chat/completions", json=body).status_code == 200


@pytest.mark.parametrize("value", [False, True, "5", 1.5, -1])
def test_admin_limits_take_only_json_integers(value: Any) -> None:
    with pytest.raises(ValidationError):
        LimitsBody.model_validate({"max_concurrent": value})
    assert LimitsBody.model_validate({"max_concurrent": 0}).max_concurrent == 0


def test_a_request_the_server_cannot_parse_gets_a_documented_plain_400(gateway_url: str) -> None:
    """An empty Content-Length is refused by the HTTP server before any route, in plain
    text; every operation's 400 allows that, JSON-documented ones included."""
    host, port = gateway_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(b"GET /v1/models HTTP/1.1\r\nHost: x\r\nContent-Length: \r\n\r\n")
        head = sock.recv(65536).decode(errors="replace").lower()
    assert head.startswith("http/1.1 400")
    assert "content-type: text/plain" in head
    for path, method, operation in operations(document()):
        refused = operation["responses"]["400"]
        if "content" in refused:
            assert "text/plain" in refused["content"], (method, path)
