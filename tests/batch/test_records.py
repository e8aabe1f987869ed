from __future__ import annotations

from batch.engine import EngineResult, finish_reason
from batch.records import (
    duplicate_record,
    refusal_record,
    response_body,
    result_record,
)
from gateway.errors import ModelNotFound


def test_chat_response_has_the_openai_shape_and_usage() -> None:
    record = result_record("chat", "m", EngineResult("c1", "hello", 10, 3, "length"))
    assert record["custom_id"] == "c1"
    assert record["id"].startswith("batch_req_")
    assert record["error"] is None
    response = record["response"]
    assert response["status_code"] == 200
    assert response["request_id"]
    body = response["body"]
    assert body["object"] == "chat.completion"
    assert body["id"].startswith("chatcmpl-")
    assert body["model"] == "m"
    assert body["choices"] == [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "hello"},
            "logprobs": None,
            "finish_reason": "length",
        }
    ]
    assert body["usage"] == {"prompt_tokens": 10, "completion_tokens": 3, "total_tokens": 13}


def test_completion_response_shape() -> None:
    body = response_body("completion", "m", EngineResult("p", " Paris", 4, 1))
    assert body["object"] == "text_completion"
    assert body["choices"][0]["text"] == " Paris"
    assert body["choices"][0]["finish_reason"] == "stop"


def test_refusal_keeps_status_and_openai_error_body() -> None:
    record = refusal_record("x", ModelNotFound("no such model", param="model"))
    assert record["response"]["status_code"] == 404
    assert record["response"]["body"] == {
        "error": {
            "message": "no such model",
            "type": "invalid_request_error",
            "param": "model",
            "code": "model_not_found",
        }
    }
    assert record["error"] == {"code": "model_not_found", "message": "no such model"}


def test_engine_failure_is_a_server_error_line() -> None:
    record = result_record("chat", "m", EngineResult("e", error="boom"))
    assert record["response"]["status_code"] == 500
    assert record["response"]["body"]["error"]["type"] == "server_error"
    assert record["error"]["message"] == "boom"


def test_duplicate_line_names_the_first_occurrence() -> None:
    record = duplicate_record("d", 3)
    assert record["response"]["status_code"] == 400
    assert record["error"]["code"] == "duplicate_custom_id"
    assert "line 3" in record["error"]["message"]


def test_finish_reason_is_length_only_at_max_tokens() -> None:
    assert finish_reason(4, 4) == "length"
    assert finish_reason(3, 4) == "stop"
    assert finish_reason(100, None) == "stop"
