from __future__ import annotations

import json

import pytest

from batch.lines import custom_id_of, parse_line
from gateway.errors import InvalidRequest
from tests.batch.support import chat_line, completion_line


def test_chat_line_parses_to_its_endpoint_and_body() -> None:
    line = parse_line(chat_line("a", max_tokens=4))
    assert (line.custom_id, line.endpoint, line.url) == ("a", "chat", "/v1/chat/completions")
    assert line.body["max_tokens"] == 4


def test_completion_line_parses() -> None:
    assert parse_line(completion_line("b")).endpoint == "completion"


def test_default_model_fills_a_missing_model_only() -> None:
    raw = json.dumps({"custom_id": "x", "url": "/v1/completions", "body": {"prompt": "hi"}})
    assert parse_line(raw, "auto").body["model"] == "auto"
    assert parse_line(completion_line("y", model="gemma-3"), "auto").body["model"] == "gemma-3"


@pytest.mark.parametrize(
    ("raw", "param", "code"),
    [
        ("{not json", None, "invalid_json"),
        ("[1, 2]", None, "invalid_json"),
        ('{"url": "/v1/completions", "body": {}}', "custom_id", None),
        ('{"custom_id": "", "url": "/v1/completions", "body": {}}', "custom_id", None),
        ('{"custom_id": "a", "url": "/v1/embeddings", "body": {}}', "url", "invalid_url"),
        (
            '{"custom_id": "a", "method": "GET", "url": "/v1/completions", "body": {}}',
            "method",
            None,
        ),
        ('{"custom_id": "a", "url": "/v1/completions", "body": "x"}', "body", None),
    ],
)
def test_malformed_lines_are_refused(raw: str, param: str | None, code: str | None) -> None:
    with pytest.raises(InvalidRequest) as caught:
        parse_line(raw)
    assert (caught.value.param, caught.value.code) == (param, code)
    assert caught.value.status_code == 400


def test_schema_errors_name_the_field() -> None:
    raw = json.dumps(
        {"custom_id": "a", "url": "/v1/chat/completions", "body": {"model": "auto", "messages": []}}
    )
    with pytest.raises(InvalidRequest) as caught:
        parse_line(raw)
    assert caught.value.param == "body.messages"


def test_negative_max_tokens_is_refused() -> None:
    with pytest.raises(InvalidRequest) as caught:
        parse_line(chat_line("a", max_tokens=0))
    assert caught.value.param == "body.max_tokens"


@pytest.mark.parametrize(("name", "value"), [("stream", True), ("n", 2), ("tools", [{"x": 1}])])
def test_options_a_batch_cannot_honour_are_refused(name: str, value: object) -> None:
    with pytest.raises(InvalidRequest) as caught:
        parse_line(chat_line("a", **{name: value}))
    assert (caught.value.param, caught.value.code) == (f"body.{name}", "unsupported_parameter")


def test_n_of_one_and_stream_false_are_accepted() -> None:
    assert parse_line(chat_line("a", n=1, stream=False)).custom_id == "a"


def test_custom_id_of_recovers_ids_of_broken_lines() -> None:
    assert custom_id_of('{"custom_id": "k", "body": 3}', 7) == "k"
    assert custom_id_of("{torn", 7) == "line-7"
    assert custom_id_of('{"custom_id": 5}', 2) == "line-2"
