"""Every refusal: the documented status and an OpenAI error body, and the gateway keeps serving."""

from __future__ import annotations

import base64
from typing import Any

import httpx
import pytest

from tests.gateway.conftest import MAX_BODY, MAX_MESSAGES
from tests.gateway_media.craft import animated_webp
from tests.support.media import png_bytes, wav_base64

USER = {"role": "user", "content": "hi"}


def chat(model: str = "auto", messages: list[Any] | None = None, **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": messages or [USER], **extra}


def image(url: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}}]}]


def audio(data: str, fmt: str = "wav") -> list[dict[str, Any]]:
    part = {"type": "input_audio", "input_audio": {"data": data, "format": fmt}}
    return [{"role": "user", "content": [part]}]


def data_url(raw: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64," + base64.b64encode(raw).decode()


CASES: list[tuple[str, dict[str, Any], int, str]] = [
    (
        "malformed_json",
        {"content": b'{"model": "auto", "messages": ['},
        400,
        "invalid_request_error",
    ),
    ("wrong_type", {"json": chat(messages="hello")}, 400, "invalid_request_error"),
    (
        "wrong_role",
        {"json": chat(messages=[{"role": "wizard", "content": "x"}])},
        400,
        "invalid_request_error",
    ),
    (
        "oversized_body",
        {"json": chat(messages=[{"role": "user", "content": "x" * (MAX_BODY + 1)}])},
        413,
        "invalid_request_error",
    ),
    (
        "too_many_messages",
        {"json": chat(messages=[USER] * (MAX_MESSAGES + 1))},
        400,
        "invalid_request_error",
    ),
    ("max_tokens_cap", {"json": chat(max_tokens=100_000)}, 400, "invalid_request_error"),
    ("n_cap", {"json": chat(n=50)}, 400, "invalid_request_error"),
    ("unknown_field", {"json": chat(frobnicate=True)}, 400, "invalid_request_error"),
    ("unknown_model", {"json": chat(model="gpt-4o")}, 404, "invalid_request_error"),
    (
        "missing_capability",
        {"json": chat("gemma-3-270m", image(data_url(png_bytes())))},
        400,
        "invalid_request_error",
    ),
    (
        "context_too_long",
        {"json": chat("gemma-3-270m", [{"role": "user", "content": "x" * 20_000}])},
        400,
        "invalid_request_error",
    ),
    (
        "image_bomb",
        {"json": chat(messages=image(data_url(png_bytes(6000, 6000))))},
        400,
        "invalid_request_error",
    ),
    (
        "truncated_png",
        {"json": chat(messages=image(data_url(png_bytes()[:40])))},
        400,
        "invalid_request_error",
    ),
    (
        "not_an_image",
        {"json": chat(messages=image(data_url(b"plain text, not pixels")))},
        400,
        "invalid_request_error",
    ),
    (
        "ten_minute_audio",
        {"json": chat(messages=audio(wav_base64(600.0, rate=1000)))},
        400,
        "invalid_request_error",
    ),
    (
        "bad_base64",
        {"json": chat(messages=audio("!!! not base64 !!!"))},
        400,
        "invalid_request_error",
    ),
    (
        "private_ip_image",
        {"json": chat(messages=image("http://10.0.0.1/cat.png"))},
        400,
        "invalid_request_error",
    ),
]


@pytest.mark.parametrize(
    ("case", "request_kwargs", "status", "error_type"), CASES, ids=[c[0] for c in CASES]
)
def test_refused_with_openai_error(
    http: httpx.Client, case: str, request_kwargs: dict[str, Any], status: int, error_type: str
) -> None:
    response = http.post("/v1/chat/completions", **request_kwargs)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == error_type
    assert error["message"]
    after = http.post("/v1/chat/completions", json=chat())
    assert after.status_code == 200


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [("GET", "/v1/chat/completions", 405), ("POST", "/v1/nothing", 404)],
)
def test_unknown_routes(http: httpx.Client, method: str, path: str, status: int) -> None:
    response = http.request(method, path)
    assert response.status_code == status
    assert set(response.json()["error"]) == {"message", "type", "param", "code"}


def test_chunked_body_over_limit_is_413(http: httpx.Client) -> None:
    def body():
        for _ in range(MAX_BODY // 65536 + 2):
            yield b" " * 65536

    response = http.post(
        "/v1/chat/completions", content=body(), headers={"content-type": "application/json"}
    )
    assert response.status_code == 413


def test_codes_name_the_problem(http: httpx.Client) -> None:
    codes = {
        "too_many_messages": chat(messages=[USER] * (MAX_MESSAGES + 1)),
        "unknown_parameter": chat(frobnicate=1),
        "model_not_found": chat(model="nope"),
        "model_capability_missing": chat("gemma-3-270m", image(data_url(png_bytes()))),
        "image_too_large_to_decode": chat(
            messages=image(data_url(animated_webp(4096, 4096, 32), "image/webp"))
        ),
        "context_length_exceeded": chat(
            "gemma-3-270m", [{"role": "user", "content": "x" * 20_000}]
        ),
    }
    for code, body in codes.items():
        assert http.post("/v1/chat/completions", json=body).json()["error"]["code"] == code


def test_vllm_extra_params_are_forwarded(http: httpx.Client, stub) -> None:
    assert http.post("/v1/chat/completions", json=chat(top_k=5, min_p=0.1)).status_code == 200
    assert stub.requests[-1][1]["top_k"] == 5
