"""OpenAI batch output lines: one per input line, a response or an error.

    {"id": "batch_req_...", "custom_id": "...",
     "response": {"status_code": 200, "request_id": "...", "body": <chat.completion or
                  text_completion with usage>},
     "error": null}

A refused line keeps the same shape with the refusal's HTTP status and an OpenAI error
body (``{"error": {"message", "type", "param", "code"}}``), and ``error`` repeats its
code and message, so a consumer can filter failures without reading bodies.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from batch.engine import EngineResult
from gateway.errors import GatewayError, body_for, error_body


def _hex() -> str:
    return uuid.uuid4().hex


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def response_body(endpoint: str, model: str, result: EngineResult) -> dict[str, Any]:
    """The body the online endpoint would have returned for this generation."""
    if endpoint == "chat":
        choice: dict[str, Any] = {
            "index": 0,
            "message": {"role": "assistant", "content": result.text},
        }
        prefix, kind = "chatcmpl", "chat.completion"
    else:
        choice = {"index": 0, "text": result.text}
        prefix, kind = "cmpl", "text_completion"
    choice |= {"logprobs": None, "finish_reason": result.finish_reason}
    return {
        "id": f"{prefix}-{_hex()}",
        "object": kind,
        "created": int(time.time()),
        "model": model,
        "choices": [choice],
        "usage": usage(result.prompt_tokens, result.completion_tokens),
    }


def success_record(custom_id: str, body: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": f"batch_req_{_hex()}",
        "custom_id": custom_id,
        "response": {"status_code": 200, "request_id": _hex(), "body": body},
        "error": None,
    }


def error_record(custom_id: str, status_code: int, body: dict[str, Any]) -> dict[str, Any]:
    """An error line: ``body`` is an OpenAI error body."""
    error = body["error"]
    return {
        "id": f"batch_req_{_hex()}",
        "custom_id": custom_id,
        "response": {"status_code": status_code, "request_id": _hex(), "body": body},
        "error": {"code": error.get("code") or error.get("type"), "message": error["message"]},
    }


def refusal_record(custom_id: str, exc: GatewayError) -> dict[str, Any]:
    """The error line of a line refused before it reached an engine."""
    return error_record(custom_id, exc.status_code, body_for(exc))


def engine_error_record(custom_id: str, message: str) -> dict[str, Any]:
    """The error line of a request the engine failed on (a server error)."""
    return error_record(
        custom_id, 500, error_body(message, error_type="server_error", code="engine_error")
    )


def duplicate_record(custom_id: str, line_number: int) -> dict[str, Any]:
    """The error line of a repeated ``custom_id`` (the first occurrence runs)."""
    message = (
        f"custom_id {custom_id!r} repeats an earlier line (line {line_number}); "
        "custom_ids must be unique in a batch."
    )
    body = error_body(
        message, error_type="invalid_request_error", param="custom_id", code="duplicate_custom_id"
    )
    return error_record(custom_id, 400, body)


def result_record(endpoint: str, model: str, result: EngineResult) -> dict[str, Any]:
    """The output line of one engine result: a response, or a 500 error line."""
    if result.error is not None:
        return engine_error_record(result.custom_id, result.error)
    return success_record(result.custom_id, response_body(endpoint, model, result))
